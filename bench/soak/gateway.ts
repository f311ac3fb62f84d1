/**
 * The soak's gateway: the real bundle (`gateway run`) as the systemd unit runs it, with the
 * unit's node flags and its listening sockets handed over (the lab's socket holder stands in
 * for the socket units), so the primary forks its proxy workers and keeps registration,
 * WireGuard and the state. Its proxy, RPC and admin API listen on 127.0.0.1; its WireGuard is
 * wireguard-go in a network namespace this module makes and removes (testkit/wireguard.ts). The
 * tunnel network is a 127.x.y.0/20 (as the adversarial suite does), so an instance's address is
 * on this host's loopback, where the soak's backend listens.
 * Every process dies with the soak: the holder and the gateway get SIGTERM when their parent
 * goes (`setpriv --pdeathsig`), and `stop()` ends the gateway's process group, then the holder,
 * then everything left in the namespace.
 * The control plane per engine (scenario (i), `bench/registration/engines.ts`) starts it too,
 * with its own settings (`GatewaySettings`).
 */
import { randomInt } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { TEST_DOMAIN } from "../../testkit/certs.js";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import { cleanupStale, NetnsHarness } from "../../testkit/netns.js";
import { until } from "../../testkit/poll.js";
import { appInfoSpec, createTestCa, issueRaTlsCert, type TestCert } from "../../testkit/ra-tls.js";
import { ADMIN_TOKEN, adminRequest, rpcRequest } from "../../testkit/requests.js";
import { stopHaproxy } from "../../testkit/haproxy.js";
import { loopbackWgSection, startCvmPeer, writeShims } from "../../testkit/wireguard.js";
import { freePort } from "../lib/net.js";
import { groupAlive, type ProcessSet } from "../lib/procs.js";
import type { BenchCvm } from "../registration/common.js";
import { GATEWAY } from "./plan.js";

const HOLDER = new URL("../../lab/shims/socket-holder.mjs", import.meta.url).pathname;

export interface SoakGateway {
  /** The primary's pid, which leads the process group of it and its workers. */
  readonly pid: number;
  readonly proxyPort: number;
  /** The gateway's WireGuard interface (wireguard-go's command line names it). */
  readonly iface: string;
  readonly logFile: string;
  /** `dirname(core.state_path)`: the HAProxy engine keeps its files under `haproxy/` there. */
  readonly stateDir: string;
  /** RegisterCvm over the RPC port with an RA-TLS client certificate; the instance's address. */
  register(cvm: BenchCvm, cert?: TestCert): Promise<string>;
  /** A client certificate for `cvm`, signed by the CA the gateway trusts. */
  certificate(cvm: BenchCvm): TestCert;
  /** Admin `RemoveInstance`; false when the gateway did not know the instance (recycled). */
  remove(instanceId: string): Promise<boolean>;
  /** Admin `Status`: the registered instances and their latest handshake (s), open connections. */
  status(): Promise<{ hosts: { instance_id: string; latest_handshake: number }[]; open: number }>;
  /**
   * Starts the CVM side of `cvm`'s tunnel (private key given): its handshakes keep it healthy.
   * Called again, the same interface takes the new key (a CVM rebooted as another instance)
   * and handshakes at once, so one wireguard-go serves instance after instance.
   */
  connectPeer(privateKey: string): Promise<void>;
  alive(): boolean;
  /** Stops the gateway and the holder, removes the namespace; safe to call twice. */
  stop(): Promise<void>;
  /** For an exit handler: SIGKILL to the gateway's group, nothing else. */
  killNow(): void;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // gone already
  }
}

/** What differs from the soak's gateway (`GATEWAY` in plan.ts) when another scenario runs it. */
export interface GatewaySettings {
  readonly engine?: "node" | "haproxy";
  readonly workers?: number;
  readonly handshakePollInterval?: string;
}

export async function startSoakGateway(o: {
  ps: ProcessSet;
  dir: string;
  bundle: string;
  /** The node flags of the primary, which its workers inherit (a host's: `NODE_FLAGS`). */
  nodeFlags: readonly string[];
  certFile: string;
  keyFile: string;
  settings?: GatewaySettings;
}): Promise<SoakGateway> {
  await cleanupStale();
  const net = new NetnsHarness();
  const dir = join(o.dir, "gateway");
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, "gateway.log");
  let pid = 0;
  const stop = async () => {
    if (pid > 0) {
      signalGroup(pid, "SIGTERM");
      await until("the gateway to stop", () => !groupAlive(pid), 15_000).catch(() => {
        signalGroup(pid, "SIGKILL");
      });
    }
    await o.ps.stop(holder, 3000);
    // HAProxy (the haproxy engine) runs in a process group of its own and outlives a runtime
    // whose sockets were handed over, waiting for the next generation to adopt it.
    await stopHaproxy(join(dir, "state", "haproxy"));
    await net.teardown();
  };
  const ns = await net.add("soak");
  const shims = join(dir, "shims");
  mkdirSync(shims);
  writeShims(shims, ns);
  const clientCa = createTestCa("soak RA-TLS CA");
  writeFileSync(join(dir, "client-ca.pem"), clientCa.pem);
  const [proxyPort, rpcPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const prefix = `127.${randomInt(20, 100)}.${randomInt(0, 16) * 16}`;
  const wg = generateWgKeyPair();
  const iface = net.linkName("gw");
  const config = {
    log_level: "info",
    address: "127.0.0.1",
    port: rpcPort,
    core: {
      rpc_domain: `rpc.${TEST_DOMAIN}`,
      state_path: join(dir, "state", "state.json"),
      auth: { enabled: false },
      certbot: { enabled: false },
      admin: { enabled: true, address: "127.0.0.1", port: adminPort, auth_token: ADMIN_TOKEN },
      attestation: { mode: "ca", ca_file: join(dir, "client-ca.pem") },
      recycle: {
        enabled: true,
        interval: GATEWAY.recycleInterval,
        timeout: `${GATEWAY.recycleTimeoutMs / 1000}s`,
      },
      wg: loopbackWgSection({
        keys: wg,
        net: prefix,
        bits: 20,
        reserved: 27,
        dir,
        iface,
        pollInterval: o.settings?.handshakePollInterval ?? GATEWAY.handshakePollInterval,
      }),
      proxy: {
        cert_chain: o.certFile,
        cert_key: o.keyFile,
        base_domain: TEST_DOMAIN,
        listen_addr: "127.0.0.1",
        listen_port: proxyPort,
        http_redirect: false,
        workers: o.settings?.workers ?? GATEWAY.workers,
        engine: o.settings?.engine ?? "node",
        drain_timeout: GATEWAY.drainTimeout,
      },
    },
  };
  const configFile = join(dir, "gateway.json");
  writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });

  const holderDir = join(dir, "holder");
  mkdirSync(holderDir);
  const path = `${shims}${delimiter}${process.env.PATH ?? ""}`;
  const ready = join(dir, "ready");
  const node = [process.execPath, ...o.nodeFlags, o.bundle].join(" ");
  writeFileSync(
    join(holderDir, "start"),
    `exec >>${logFile} 2>&1\nexport PATH='${path}' LISTEN_PID=$$\nexec setpriv --pdeathsig TERM ${node} run --config ${configFile} --ready-file ${ready}\n`,
  );
  const holder = o.ps.spawn(
    "socket-holder",
    "setpriv",
    [
      ...["--pdeathsig", "TERM", process.execPath, HOLDER, holderDir],
      ...[`tls=127.0.0.1:${proxyPort}`, `rpc=127.0.0.1:${rpcPort}`],
    ],
    { logDir: dir },
  );
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-4000) : "");
  try {
    await until("the socket holder", () => existsSync(join(holderDir, "holder.pid")), 10_000);
    process.kill(holder.pid, "SIGUSR1");
    pid = await until(
      "the gateway's pid",
      () => Number(readFileSync(join(holderDir, "main.pid"), "utf8")) || undefined,
      10_000,
    );
    await until("the gateway to serve", () => existsSync(ready) || !groupAlive(pid), 60_000, {
      context: log,
    });
    if (!groupAlive(pid)) throw new Error(`the gateway exited while starting:\n${log()}`);
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }

  /** The CVM end's interface, once `connectPeer` has started it. */
  let cvmPeer: string | undefined;
  const certificate = (cvm: BenchCvm) =>
    issueRaTlsCert(clientCa, { appInfo: appInfoSpec(cvm.appId, cvm.instanceId) });
  return {
    pid,
    proxyPort,
    iface,
    logFile,
    stateDir: join(dir, "state"),
    certificate,
    async register(cvm, cert) {
      const answer = await rpcRequest(rpcPort, {
        cert: cert ?? certificate(cvm),
        body: JSON.stringify({ client_public_key: cvm.publicKey }),
      });
      if (answer.status !== 200) {
        throw new Error(`RegisterCvm: ${answer.status} ${answer.text.slice(0, 200)}`);
      }
      return (JSON.parse(answer.text) as { wg: { client_ip: string } }).wg.client_ip;
    },
    async remove(instanceId) {
      const answer = await adminRequest(adminPort, {
        path: "/prpc/Admin.RemoveInstance",
        body: JSON.stringify({ instance_id: instanceId }),
      });
      if (answer.status === 200) return true;
      if (answer.text.includes("E_REGISTRY_UNKNOWN_INSTANCE")) return false;
      throw new Error(`RemoveInstance: ${answer.status} ${answer.text.slice(0, 200)}`);
    },
    async status() {
      const answer = await adminRequest(adminPort, { method: "GET", path: "/prpc/Admin.Status" });
      if (answer.status !== 200) throw new Error(`Status: ${answer.status} ${answer.text}`);
      const s = JSON.parse(answer.text) as {
        hosts: { instance_id: string; latest_handshake: number }[];
        num_connections: number;
      };
      return { hosts: s.hosts, open: s.num_connections };
    },
    async connectPeer(privateKey) {
      const keyFile = join(dir, "cvm.key");
      if (cvmPeer) {
        // A new private key drops the peer's session; turning its keepalive off and on again
        // sends one at once, which needs (so starts) a handshake with the new key.
        writeFileSync(keyFile, privateKey, { mode: 0o600 });
        const peer = ["peer", wg.publicKey, "persistent-keepalive"];
        await net.exec(ns, "wg", ["set", cvmPeer, "private-key", keyFile, ...peer, "0"]);
        await net.exec(ns, "wg", ["set", cvmPeer, ...peer, "1"]);
        return;
      }
      cvmPeer = net.linkName("cvm");
      await startCvmPeer(net, {
        ns,
        iface: cvmPeer,
        keyFile,
        privateKey,
        listenPort: 51821,
        gatewayKey: wg.publicKey,
        gatewayEndpoint: "127.0.0.1:51820",
        gatewayIp: `${prefix}.1/32`,
      });
    },
    alive: () => groupAlive(pid),
    stop,
    killNow: () => signalGroup(pid, "SIGKILL"),
  };
}

/** Waits until the instance `id` has had a WireGuard handshake (the admin API; not the proxy's cache). */
export async function waitForHandshake(gw: SoakGateway, id: string): Promise<void> {
  await until(
    "the traffic instance's first WireGuard handshake",
    async () =>
      (await gw.status()).hosts.some((h) => h.instance_id === id && h.latest_handshake > 0),
    20_000,
    { everyMs: 250 },
  );
}
