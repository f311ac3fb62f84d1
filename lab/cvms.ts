import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { existsSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { appInfoSpec, createTestCa, issueRaTlsCert, type TestCert } from "../testkit/ra-tls.js";
import type { LabAcme } from "./acme.js";
import { alive, daemon, sh, step, stopDaemon, waitUntil } from "./exec.js";
import { labNode } from "./node.js";
import { labLeaf } from "./pki.js";
import { FIRST_GATEWAY, LAB, labDir, labPath, readJson, writeJson } from "./state.js";

/** Both lab CVMs are instances of one app, so failover can be shown; ids are hex as dstack's. */
export const LAB_APP_ID = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const INSTANCE_IDS = [
  "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1",
  "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2",
];
const ROOT = new URL("..", import.meta.url).pathname;

export interface LabCvm {
  readonly ns: string;
  readonly instanceId: string;
  readonly interface: string;
  readonly agentPid: number;
  readonly demoPid: number;
  readonly sshdPid: number;
}

const stateFile = () => labPath("cvms.json");

/** The CA CVM client certificates chain to: the lab's stand-in for the KMS (attestation mode "ca"). */
export async function labClientCa(): Promise<TestCert & { certPem: string }> {
  const file = join(labDir("pki"), "client-ca.json");
  const saved = readJson<{ pem: string; keyPem: string }>(file);
  if (saved) {
    const cert = new X509Certificate(saved.pem);
    const key = createPrivateKey(saved.keyPem);
    return {
      der: cert.raw,
      pem: saved.pem,
      key,
      keyPem: saved.keyPem,
      spki: createPublicKey(key).export({ type: "spki", format: "der" }),
      subject: "gateway lab CVM client CA",
      certPem: saved.pem,
    };
  }
  const ca = createTestCa("gateway lab CVM client CA");
  writeJson(file, { pem: ca.pem, keyPem: ca.keyPem });
  return { ...ca, certPem: ca.pem };
}

async function wgAddress(ns: string, dev: string): Promise<string | undefined> {
  const out = await sh("ip", ["-n", ns, "-4", "-o", "address", "show", "dev", dev]).catch(() => "");
  return /inet (\d+\.\d+\.\d+\.\d+)/.exec(out)?.[1];
}

/** Each CVM: its RA-TLS client certificate, the agent (registration + tunnel), demo services and sshd. */
export async function cvmsUp(clientCa: TestCert, acme: LabAcme): Promise<LabCvm[]> {
  const previous = readJson<LabCvm[]>(stateFile()) ?? [];
  const cvms: LabCvm[] = [];
  const node = await labNode();
  for (const [k, spec] of LAB.cvms.entries()) {
    const instanceId = INSTANCE_IDS[k] as string;
    const dir = labDir(`cvm${k + 1}`);
    const dev = `wglabcvm${k + 1}`;
    const old = previous.find((c) => c.ns === spec.ns);
    if (
      old &&
      alive(old.agentPid) &&
      alive(old.demoPid) &&
      runsOn(old.agentPid, node) &&
      (await wgAddress(spec.ns, dev))
    ) {
      step(`CVM ${spec.ns}: agent and demo services already running`);
      cvms.push(old);
      continue;
    }
    for (const pid of [old?.agentPid, old?.demoPid, old?.sshdPid]) await stopDaemon(pid);
    const certFile = join(dir, "client.pem");
    const keyFile = join(dir, "client.key");
    if (!existsSync(certFile)) {
      const cert = issueRaTlsCert(clientCa, { appInfo: appInfoSpec(LAB_APP_ID, instanceId) });
      writeFileSync(certFile, cert.pem + clientCa.pem, { mode: 0o600 });
      writeFileSync(keyFile, cert.keyPem, { mode: 0o600 });
    }
    const backend = await labLeaf(`cvm${k + 1}-backend`, [
      `DNS:${LAB.customDomain}`,
      `DNS:${LAB_APP_ID}s.${LAB.baseDomain}`,
      `DNS:${LAB_APP_ID}-8443s.${LAB.baseDomain}`,
    ]);
    step(
      `CVM ${spec.ns}: starting demo services (HTTP+WebSocket 80/8080, h2 50051, TLS 443/8443) and sshd`,
    );
    const demoPid = daemon(
      node,
      [
        "--import",
        "tsx",
        join(ROOT, "lab/demo/server.ts"),
        instanceId,
        backend.certFile,
        backend.keyFile,
      ],
      {
        ns: spec.ns,
        logFile: join(dir, "demo.log"),
      },
    );
    const sshdPid = startCvmSshd(spec.ns, dir);
    step(
      `CVM ${spec.ns}: starting the agent (registers instance ${instanceId.slice(0, 8)}… of app ${LAB_APP_ID.slice(0, 8)}…)`,
    );
    const agentPid = daemon(
      node,
      [
        join(ROOT, "dist/gateway.mjs"),
        "agent",
        "--gateway",
        `https://${FIRST_GATEWAY.address}:8000`,
        "--servername",
        LAB.rpcDomain,
        "--cert",
        certFile,
        "--key",
        keyFile,
        "--ca",
        acme.rootFile,
        "--interface",
        dev,
        "--data-dir",
        join(dir, "agent"),
        // 10m by default; short here so the region suite sees a CVM learn of a host that
        // came back within its bounds.
        "--refresh-interval",
        "15s",
      ],
      { ns: spec.ns, logFile: join(dir, "agent.log") },
    );
    await waitUntil(
      `the agent of ${spec.ns} to register and bring up ${dev} (see ${join(dir, "agent.log")})`,
      async () => (await wgAddress(spec.ns, dev)) !== undefined,
      30_000,
    );
    cvms.push({ ns: spec.ns, instanceId, interface: dev, agentPid, demoPid, sshdPid });
  }
  writeJson(stateFile(), cvms);
  return cvms;
}

/** A process started from `node` (not one left by a lab on another node). */
function runsOn(pid: number, node: string): boolean {
  try {
    return realpathSync(`/proc/${pid}/exe`) === realpathSync(node);
  } catch {
    return false;
  }
}

function startCvmSshd(ns: string, dir: string): number {
  const hostDir = labDir("host");
  writeFileSync(
    join(dir, "sshd_config"),
    [
      "ListenAddress 0.0.0.0:22",
      `HostKey ${join(hostDir, "host_key")}`,
      `AuthorizedKeysFile ${join(hostDir, "authorized_keys")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "Subsystem sftp internal-sftp",
      "",
    ].join("\n"),
  );
  return daemon("/usr/sbin/sshd", ["-D", "-e", "-f", join(dir, "sshd_config")], {
    ns,
    logFile: join(dir, "sshd.log"),
  });
}

export async function cvmsDown(): Promise<void> {
  for (const cvm of readJson<LabCvm[]>(stateFile()) ?? []) {
    for (const pid of [cvm.agentPid, cvm.demoPid, cvm.sshdPid]) await stopDaemon(pid);
  }
}
