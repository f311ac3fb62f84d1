/**
 * A real gateway for the adversarial suite: the bundle (`node dist/gateway.mjs run`) on
 * 127.0.0.1 with its proxy, registration RPC and admin API, as a host runs it. Only its
 * WireGuard lives elsewhere: `ip`, `wg` and `wireguard-go` reach it
 * through shims first on its PATH that run them inside a network namespace this harness makes.
 * The tunnel network is a 127.x.y.0/24 no one else uses, so the instance address the gateway
 * dials is on this host's loopback, where the test's backends listen. A second wireguard-go in
 * the namespace plays the CVM's side of the tunnel: its handshakes make the instance healthy.
 *
 * `engine: "haproxy"` runs the gateway with `core.proxy.engine = "haproxy"`: HAProxy on the
 * proxy port, the Node data plane as its slow path (ARCHITECTURE.md "The HAProxy engine").
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import { createCa, issueLeaf, TEST_DOMAIN, type TestCa } from "../../testkit/certs.js";
import { cleanupStale, NetnsHarness } from "../../testkit/netns.js";
import { loopbackWgSection, startCvmPeer, UAPI_RACE, writeShims } from "../../testkit/wireguard.js";
import { appInfoSpec, createTestCa, issueRaTlsCert, type TestCert } from "../../testkit/ra-tls.js";
import { startDnsServer, type TestDnsServer } from "../helpers/dns-server.js";
import { until } from "../../testkit/poll.js";
import { freePorts, stopChild } from "../../testkit/process.js";
import { startBackends, type Backends } from "./backends.js";
import { ADMIN_TOKEN, adminRequest, rpcRequest } from "../../testkit/requests.js";
import { type GatewayStore, openStore, type StoreKind } from "./store.js";
import { haproxyMaster } from "../../testkit/haproxy.js";
import { type DataPlaneProcess, type Engine, Processes } from "./processes.js";

const BUNDLE = new URL("../../dist/gateway.mjs", import.meta.url).pathname;

/** Ids are 20 bytes of hex, as dstack's. */
export const newId = (): string => randomBytes(20).toString("hex");

export interface GatewayOptions {
  /** `core.proxy.timeouts.handshake`: how long a connection may take to send its ClientHello. */
  readonly helloTimeout?: string;
  /** Where registrations are kept: the state file (default) or one etcd member (store.ts). */
  readonly store?: StoreKind;
  /** `core.proxy.engine`: the Node data plane (default) or HAProxy with Node as its slow path. */
  readonly engine?: Engine;
}

export interface TestGateway {
  readonly pid: number;
  readonly proxyPort: number;
  readonly rpcPort: number;
  readonly adminPort: number;
  readonly appId: string;
  readonly instanceId: string;
  /** `<app-id>.<base>` (terminate) and `<app-id>s.<base>` (passthrough). */
  readonly terminateName: string;
  readonly passthroughName: string;
  /** The registered instance's tunnel address and WireGuard public key. */
  readonly instanceIp: string;
  readonly instanceKey: string;
  readonly statePath: string;
  readonly configFile: string;
  readonly store: StoreKind;
  readonly engine: Engine;
  /**
   * The processes to measure (health.ts), as they are now: the gateway; with HAProxy also its
   * master and workers.
   */
  processes(): DataPlaneProcess[];
  /** What a refused request must leave alone in the store (store.ts). */
  stored(): Promise<string>;
  readonly proxyCa: TestCa;
  /** The CA that signs CVM client certificates (attestation mode `ca`), and one for the instance. */
  readonly clientCa: TestCert;
  readonly instanceCert: TestCert;
  readonly backends: Backends;
  readonly dns: TestDnsServer;
  /** A client certificate for `(appId, instanceId)` signed by `clientCa`. */
  clientCert(appId: string, instanceId: string): TestCert;
  /** The gateway's WireGuard peers (`wg show <if> peers`, sorted). */
  wgPeers(): Promise<string>;
  /**
   * Whether the data plane still runs as it started: the gateway and, with HAProxy, its master
   * and workers under their first pids (a HAProxy the runtime restarted was a crash).
   */
  alive(): boolean;
  /** What `alive` found changed, for the failure message. */
  changes(): string[];
  /** Its log lines at level error or worse (pino: 50 and up). */
  errors(): string[];
  log(): string;
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions = {}): Promise<TestGateway> {
  await cleanupStale();
  const net = new NetnsHarness();
  const dir = mkdtempSync(join(tmpdir(), "gw-adv-"));
  const proxyCa = createCa();
  // Before the try below, whose close() needs it: a DNS server that fails to start must not
  // leave the directory and the CA behind.
  const dns = await startDnsServer().catch((error: unknown) => {
    proxyCa.cleanup();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  });
  let child: ChildProcess | undefined;
  let backends: Backends | undefined;
  let store: GatewayStore | undefined;
  let output = "";
  const engine = options.engine ?? "node";
  // `<dirname(core.state_path)>/haproxy` (engine/haproxy/engine.ts `engineDir`).
  const engineDir = join(dir, "state", "haproxy");
  const close = async () => {
    await stopChild(child);
    // The runtime stops HAProxy as it exits; one it left behind (a crash) is stopped here.
    const master = engine === "haproxy" ? haproxyMaster(engineDir) : undefined;
    if (master !== undefined) process.kill(master, "SIGKILL");
    await store?.close();
    await backends?.close();
    await net.teardown();
    await dns.close();
    proxyCa.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ns = await net.add("wg");
    const shims = join(dir, "shims");
    mkdirSync(shims);
    writeShims(shims, ns);
    const leaf = issueLeaf(proxyCa, { sans: [`*.${TEST_DOMAIN}`, TEST_DOMAIN] });
    const clientCa = createTestCa("adversarial RA-TLS CA");
    writeFileSync(join(dir, "client-ca.pem"), clientCa.pem);
    const [proxyPort, rpcPort, adminPort] = (await freePorts(3)) as [number, number, number];
    const net24 = `127.${randomInt(100, 250)}.${randomInt(1, 250)}`;
    const wg = generateWgKeyPair();
    const iface = net.linkName("gw");
    const statePath = join(dir, "state", "state.json");
    const kept = await openStore(options.store ?? "file", statePath);
    store = kept;
    const config = {
      // GATEWAY_TEST_LOG=debug logs every refused connection (the suite reads errors only).
      log_level: process.env.GATEWAY_TEST_LOG ?? "info",
      address: "127.0.0.1",
      port: rpcPort,
      core: {
        rpc_domain: `rpc.${TEST_DOMAIN}`,
        state_path: statePath,
        auth: { enabled: false },
        certbot: { enabled: false },
        admin: { enabled: true, address: "127.0.0.1", port: adminPort, auth_token: ADMIN_TOKEN },
        attestation: { mode: "ca", ca_file: join(dir, "client-ca.pem") },
        recycle: { enabled: false },
        wg: loopbackWgSection({
          keys: wg,
          net: net24,
          bits: 24,
          reserved: 30,
          dir,
          iface,
          pollInterval: "250ms",
        }),
        proxy: {
          engine,
          cert_chain: leaf.certFile,
          cert_key: leaf.keyFile,
          base_domain: TEST_DOMAIN,
          listen_addr: "127.0.0.1",
          listen_port: proxyPort,
          http_redirect: false,
          // The suite runs for minutes on one handshake of the stand-in CVM.
          healthy_handshake_age: "30m",
          app_address_dns_servers: [dns.address],
          timeouts: { handshake: options.helloTimeout ?? "2s", connect: "2s" },
        },
        ...(kept.cluster ? { cluster: kept.cluster } : {}),
      },
    };
    const configFile = join(dir, "gateway.json");
    writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });
    const launch = async (): Promise<ChildProcess> => {
      output = "";
      const proc = spawn(process.execPath, [BUNDLE, "run", "--config", configFile], {
        env: { ...process.env, PATH: `${shims}${delimiter}${process.env.PATH ?? ""}` },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = proc;
      const keep = (chunk: Buffer) => {
        output += chunk.toString("utf8");
      };
      proc.stdout?.on("data", keep);
      proc.stderr?.on("data", keep);
      const started = await until(
        "the gateway's admin API",
        () => (proc.exitCode !== null ? "exited" : output.includes('"admin API listening"')),
        20_000,
        { context: () => output },
      );
      if (started === "exited") throw new Error(`the gateway exited (${proc.exitCode})`);
      return proc;
    };
    let gateway: ChildProcess;
    try {
      gateway = await launch();
    } catch (error) {
      if (!output.includes(UAPI_RACE)) throw error;
      await stopChild(child);
      gateway = await launch();
    }

    const appId = newId();
    const instanceId = newId();
    const clientCert = (app: string, instance: string) =>
      issueRaTlsCert(clientCa, { appInfo: appInfoSpec(app, instance) });
    const instanceCert = clientCert(appId, instanceId);
    const peer = generateWgKeyPair();
    const answer = await rpcRequest(rpcPort, {
      cert: instanceCert,
      body: JSON.stringify({ client_public_key: peer.publicKey }),
    });
    if (answer.status !== 200) throw new Error(`registration failed: ${answer.text}`);
    const instanceIp = (JSON.parse(answer.text) as { wg: { client_ip: string } }).wg.client_ip;
    backends = await startBackends(instanceIp);

    // The CVM's end of the tunnel, in the same namespace: its keepalives make handshakes.
    await startCvmPeer(net, {
      ns,
      iface: net.linkName("cvm"),
      keyFile: join(dir, "cvm.key"),
      privateKey: peer.privateKey,
      listenPort: 51821,
      gatewayKey: wg.publicKey,
      gatewayEndpoint: "127.0.0.1:51820",
      gatewayIp: `${net24}.1/32`,
    });
    // Probing the proxy before the first handshake would cache "no healthy instance" for
    // `cache_top_n`; the admin API shows the handshake without touching that cache.
    await until(
      "the instance's first WireGuard handshake",
      async () => {
        const status = await adminRequest(adminPort, { method: "GET", path: "/prpc/Admin.Status" });
        const hosts = (JSON.parse(status.text) as { hosts: { latest_handshake: number }[] }).hosts;
        return hosts.some((h) => h.latest_handshake > 0);
      },
      15_000,
    );

    const pid = gateway.pid ?? -1;
    const procs = new Processes(pid, engine === "haproxy" ? engineDir : undefined);
    const gatewayRuns = () => gateway.exitCode === null && gateway.signalCode === null;
    return {
      pid,
      proxyPort,
      rpcPort,
      adminPort,
      appId,
      instanceId,
      terminateName: `${appId}.${TEST_DOMAIN}`,
      passthroughName: `${appId}s.${TEST_DOMAIN}`,
      instanceIp,
      instanceKey: peer.publicKey,
      statePath,
      configFile,
      store: kept.kind,
      stored: kept.snapshot,
      proxyCa,
      clientCa,
      instanceCert,
      backends,
      dns,
      clientCert,
      async wgPeers() {
        const { stdout } = await net.exec(ns, "wg", ["show", iface, "peers"]);
        return stdout.split("\n").filter(Boolean).sort().join("\n");
      },
      engine,
      processes: () => procs.now(),
      alive: () => gatewayRuns() && procs.changes().length === 0,
      changes: () => [...(gatewayRuns() ? [] : ["the gateway exited"]), ...procs.changes()],
      errors: () =>
        output
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .filter((l) => ((JSON.parse(l) as { level?: number }).level ?? 0) >= 50),
      log: () => output,
      close,
    };
  } catch (error) {
    await close().catch(() => undefined);
    throw new Error(`${(error as Error).message}\n--- gateway log ---\n${output.slice(-8000)}`);
  }
}

/** Resident memory of process `pid`, in KiB. */
export function rssKiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  return Number(line?.[1] ?? Number.NaN);
}
