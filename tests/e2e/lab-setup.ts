// The lab the e2e suite runs against (npm run lab), and the clients that reach it. Not a test
// file: lab.test.ts calls useLab() once, so one lab serves the whole suite.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, expect } from "vitest";
import { labClientCa } from "../../lab/cvms.js";
import { sshOptions } from "../../lab/host.js";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import { appInfoSpec, issueRaTlsCert } from "../../testkit/ra-tls.js";
import { run } from "../helpers/lab-client.js";
import { until } from "../../testkit/poll.js";

export const ROOT = new URL("../../", import.meta.url).pathname;
const LAB_JSON = `${ROOT}.lab/lab.json`;

export interface LabInfo {
  baseDomain: string;
  /** Outside `*.<baseDomain>`, as in dstack's seed config. */
  rpcDomain: string;
  caFile: string;
  cvmCaFile: string;
  gateway: { https: string; http: string; rpc: string };
  /** Every gateway host of the region, the first being `gateway`. */
  gateways: { https: string; http: string; rpc: string }[];
  apps: { appId: string; instanceIds: string[] }[];
  customDomain: string;
}

/** The running lab: set by useLab()'s beforeAll. */
export const ctx = { lab: undefined as unknown as LabInfo, app: "", gw: "", wasUp: false };

export const lab$ = (...args: string[]) =>
  run(process.execPath, ["--import", "tsx", "lab/main.ts", ...args], { timeoutMs: 300_000 });
export const host = (label: string) => `${label}.${ctx.lab.baseDomain}`;
/** `curl https://<label>.<base><path>` through the gateway host at address `via`. */
export const curlVia = (
  via: string,
  label: string,
  path = "/",
  extra: string[] = [],
  ca = ctx.lab.caFile,
) =>
  run("curl", [
    "-sS",
    "--max-time",
    "10",
    "--cacert",
    ca,
    "--resolve",
    `${host(label)}:443:${via}`,
    ...extra,
    `https://${host(label)}${path}`,
  ]);
/** `curlVia` the first gateway host. */
export const curl = (label: string, path = "/", extra: string[] = [], ca = ctx.lab.caFile) =>
  curlVia(ctx.gw, label, path, extra, ca);
export const deployKey = `${ROOT}.lab/host/deploy_key`;
/** A shell command on the gateway host at `address`, as root. */
export const sshTo = (address: string, command: string, timeoutMs?: number) =>
  run("ssh", [...sshOptions(deployKey), `root@${address}`, command], {
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
/**
 * `systemctl restart gateway.service` on the host, done once the new generation has written
 * its ready file (the old workers serve until then, so routing alone does not tell).
 */
export const restartGateway = (address: string) =>
  sshTo(
    address,
    'systemctl restart gateway.service; for i in $(seq 600); do [ "$(cat /run/gateway/ready 2>/dev/null)" = "$(systemctl show -p MainPID --value gateway.service)" ] && exit 0; sleep 0.1; done; exit 1',
    90_000,
  );
/** `sshTo` the first gateway host. */
export const ssh = (command: string) => sshTo(ctx.gw, command);

/**
 * One connection through the gateway with `openssl s_client` to `servername`, sending `input`;
 * the CVMs' own CA checks the certificate (passthrough), and with `verify` a bad one fails it.
 * `via`: the gateway host to connect to (default the first).
 */
export const sClient = (
  servername: string,
  input: string,
  opts: { verify?: boolean; via?: string } = {},
) =>
  run(
    "openssl",
    [
      "s_client",
      "-connect",
      `${opts.via ?? ctx.gw}:443`,
      "-servername",
      servername,
      "-CAfile",
      ctx.lab.cvmCaFile,
      ...(opts.verify ? ["-verify_return_error"] : []),
      "-ign_eof",
    ],
    { input },
  );

/** A TLS connection to `<label>.<base>` through the gateway host at `via` (default the first). */
export function openTls(label: string, via = ctx.gw): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: via,
      port: 443,
      servername: host(label),
      ca: readFileSync(ctx.lab.caFile),
    });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
  });
}

/**
 * `RegisterCvm` through the gateway host at `address`, as a new instance of the lab's app with
 * a fresh WireGuard key (a CVM whose tunnel never comes up: the registration is what counts).
 */
export async function register(
  address: string,
): Promise<{ status: number; body: string; id: string }> {
  const id = randomBytes(20).toString("hex");
  const cert = issueRaTlsCert(await labClientCa(), { appInfo: appInfoSpec(ctx.app, id) });
  const body = JSON.stringify({ client_public_key: generateWgKeyPair().publicKey });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: address,
        port: 8000,
        method: "POST",
        path: "/prpc/Gateway.RegisterCvm?json",
        servername: ctx.lab.rpcDomain,
        ca: readFileSync(ctx.lab.caFile),
        cert: cert.pem,
        key: cert.keyPem,
        headers: { "content-type": "application/json" },
        agent: false,
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text, id }));
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`RegisterCvm via ${address} timed out`)));
    req.once("error", reject);
    req.end(body);
  });
}

/** `until` of testkit/poll.ts with this suite's defaults: 30 s, a check every 500 ms. */
export const eventually = (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) =>
  until(what, check, timeoutMs, { everyMs: 500 });

/** The address of a host of lab.json (`10.99.0.2:443` → `10.99.0.2`). */
export const addressOf = (endpoint: { https: string }) => endpoint.https.split(":")[0] ?? "";

/**
 * `npm run lab -- up <args>`, then `ctx` from the lab.json it wrote, once every gateway host
 * routes to both instances (a redeploy restarts the gateways; tunnels come back with the CVMs'
 * next handshakes).
 */
export async function labUp(...args: string[]): Promise<void> {
  const r = await lab$("up", ...args);
  if (r.code !== 0) throw new Error(`npm run lab failed:\n${r.out}\n${r.err}`);
  expect(r.out).toMatch(/lab: up in [\d.]+ s/);
  ctx.lab = JSON.parse(readFileSync(LAB_JSON, "utf8")) as LabInfo;
  ctx.app = ctx.lab.apps[0]?.appId ?? "";
  ctx.gw = addressOf(ctx.lab.gateway);
  for (const gateway of ctx.lab.gateways)
    await eventually(
      `gateway host ${addressOf(gateway)} to route to both instances`,
      async () => {
        const seen = new Set<string>();
        for (let k = 0; k < 6; k++)
          seen.add((await curlVia(addressOf(gateway), `${ctx.app}-8080`)).out.split(" ")[0] ?? "");
        return seen.size === 2;
      },
      200_000,
    );
}

/** Brings the lab up before the suite (if it is not) and down after (if it was not). */
export function useLab(): void {
  beforeAll(async () => {
    ctx.wasUp = existsSync(LAB_JSON);
    await labUp("--hosts", "1", "--engine", "node");
  }, 520_000);
  afterAll(async () => {
    if (!ctx.wasUp) {
      const r = await lab$("down");
      expect(r.code).toBe(0);
      expect(existsSync(LAB_JSON)).toBe(false);
    }
  }, 120_000);
}

/** A lab CVM as `.lab/cvms.json` records it. */
export interface LabCvmRecord {
  readonly ns: string;
  readonly instanceId: string;
  readonly interface: string;
  readonly agentPid: number;
}

/**
 * Stops the agent of the lab CVM running `instanceId` (SIGTERM: it takes its tunnel down as it
 * stops) and waits until it is gone; `npm run lab -- up` starts it again. Its record.
 */
export async function stopAgent(instanceId: string): Promise<LabCvmRecord> {
  const cvms = JSON.parse(readFileSync(`${ROOT}.lab/cvms.json`, "utf8")) as LabCvmRecord[];
  const cvm = cvms.find((c) => c.instanceId === instanceId);
  const pid = cvm?.agentPid ?? 0;
  expect(pid).toBeGreaterThan(0);
  process.kill(pid, "SIGTERM");
  // Gone, or a zombie nobody reaped yet: /proc/<pid>/stat's third field is its state.
  const gone = () => {
    try {
      return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? true;
    } catch {
      return true;
    }
  };
  await until("the stopped agent to exit", gone, 10_000, { everyMs: 100 });
  return cvm as LabCvmRecord;
}
