/**
 * One host for the hand-over suite (handover.test.ts): the bundle as `gateway run`, its
 * listening sockets held by the lab's socket holder (lab/shims/socket-holder.mjs, systemd's
 * socket units in the lab), its WireGuard in a network namespace (shims for ip, wg,
 * wireguard-go, as the adversarial suite), on either data plane engine.
 *
 * The traffic is one registered app's terminated name, served by its backend on the instance's
 * tunnel address (a 127.x.y.0/24 no one else uses, so it is on this host's loopback): with
 * HAProxy that is the fast path, which HAProxy serves itself and keeps across a hand-over,
 * where `health.<base>` would go to the Node slow path of the generation that leaves
 * (README "Data plane engines").
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { expect } from "vitest";
import { generateWgKeyPair } from "../../../gateway-runtime/keys/wireguard.js";
import { createCa, issueLeaf, TEST_DOMAIN, type TestCa } from "../../../testkit/certs.js";
import { cleanupStale, NetnsHarness, processesMatching } from "../../../testkit/netns.js";
import { until } from "../../../testkit/poll.js";
import { freePort } from "../../../testkit/process.js";
import { appInfoSpec, createTestCa, issueRaTlsCert } from "../../../testkit/ra-tls.js";
import { rpcRequest } from "../../../testkit/requests.js";
import { haproxyMaster } from "../../../testkit/haproxy.js";
import { loopbackWgSection, startCvmPeer, writeShims } from "../../../testkit/wireguard.js";
import { BUNDLE } from "../../helpers/e2e-lab.js";
import { type Backend, type Engine, httpBackend } from "./harness.js";

const HOLDER = new URL("../../../lab/shims/socket-holder.mjs", import.meta.url).pathname;
const LISTEN = "127.0.0.1";

export interface HandoverLab {
  readonly engine: Engine;
  readonly dir: string;
  /** The gateway's WireGuard interface. */
  readonly iface: string;
  /** The bundle's log, every generation's. */
  log(): string;
  mainPid(): number;
  /** Starts a generation from the holder's sockets; resolves with its pid once it serves. */
  startGeneration(): Promise<number>;
  /** HAProxy's master (from its pid file), or 0. */
  haproxyMaster(): number;
  /** HAProxy's processes: its master and workers. */
  haproxyPids(): number[];
  /** Rewrites `core.proxy` with `patch` on top: what the next generation starts with. */
  reconfigure(patch: Record<string, unknown>): void;
  /** A TLS connection to the app's terminated name, or to `name`; resolves once it is up. */
  open(session?: Buffer, name?: string): Promise<TLSSocket>;
  close(): Promise<void>;
}

/** A hex id, as dstack's. */
const newId = () => randomBytes(20).toString("hex");

export async function startHandoverLab(engine: Engine, drainS: number): Promise<HandoverLab> {
  await cleanupStale();
  const net = new NetnsHarness();
  const dir = mkdtempSync(join(tmpdir(), "gw-handover-"));
  const ca: TestCa = createCa();
  const leaf = issueLeaf(ca, { sans: [`*.${TEST_DOMAIN}`, TEST_DOMAIN] });
  const clientCa = createTestCa("handover CA");
  let holder: ChildProcess | undefined;
  let backend: Backend | undefined;
  const engineDir = join(dir, "state", "haproxy");
  const log = () => readFileSync(join(dir, "gateway.log"), "utf8");
  const holderDir = join(dir, "holder");
  const mainPid = () => Number(readFileSync(join(holderDir, "main.pid"), "utf8"));
  const close = async () => {
    // The bundle's processes (mains, proxy workers, haproxy-watch), then HAProxy (its config
    // is under this lab's directory).
    for (const pid of processesMatching(BUNDLE)) process.kill(pid, "SIGKILL");
    for (const pid of processesMatching(engineDir)) process.kill(pid, "SIGKILL");
    holder?.kill("SIGTERM");
    await backend?.close();
    await net.teardown();
    ca.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };

  const ns = await net.add("wg");
  const shims = join(dir, "shims");
  mkdirSync(shims);
  writeShims(shims, ns);
  writeFileSync(join(dir, "client-ca.pem"), clientCa.pem);
  const port = await freePort();
  const rpcPort = await freePort();
  const wg = generateWgKeyPair();
  const iface = net.linkName("gw");
  const net24 = `127.${randomInt(100, 250)}.${randomInt(1, 250)}`;
  const config = {
    log_level: "info",
    address: LISTEN,
    port: rpcPort,
    core: {
      rpc_domain: `rpc.${TEST_DOMAIN}`,
      state_path: join(dir, "state", "state.json"),
      auth: { enabled: false },
      certbot: { enabled: false },
      admin: { enabled: false },
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
        listen_addr: LISTEN,
        listen_port: port,
        http_redirect: false,
        workers: 2,
        drain_timeout: `${drainS}s`,
        // The suite runs on one handshake of the stand-in CVM; an early probe's "no healthy
        // instance" must not stay cached for long.
        healthy_handshake_age: "30m",
        timeouts: { cache_top_n: "1s" },
      },
    },
  };
  const configFile = join(dir, "gateway.json");
  writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });
  mkdirSync(holderDir);
  const path = `${shims}${delimiter}${process.env.PATH ?? ""}`;
  writeFileSync(
    join(holderDir, "start"),
    `exec >>${join(dir, "gateway.log")} 2>&1\nexport PATH='${path}' LISTEN_PID=$$\nexec ${process.execPath} ${BUNDLE} run --config ${configFile} --ready-file ${join(dir, "ready")}\n`,
  );
  holder = spawn(
    process.execPath,
    [HOLDER, holderDir, `tls=${LISTEN}:${port}`, `rpc=${LISTEN}:${rpcPort}`],
    { stdio: "inherit" },
  );
  await until("the socket holder", () => existsSync(join(holderDir, "holder.pid")), 10_000);

  async function startGeneration(): Promise<number> {
    const ready = join(dir, "ready");
    rmSync(ready, { force: true });
    process.kill(holder?.pid as number, "SIGUSR1");
    const pid = await until(
      "the new generation's ready file",
      () => {
        try {
          const written = Number(readFileSync(ready, "utf8"));
          return written > 0 ? written : undefined;
        } catch {
          return undefined;
        }
      },
      30_000,
      { context: log },
    );
    expect(pid).toBe(mainPid());
    return pid;
  }

  const appId = newId();
  const name = `${appId}.${TEST_DOMAIN}`;
  const open = (session?: Buffer, to = name): Promise<TLSSocket> =>
    new Promise((resolve, reject) => {
      const s = connect({
        host: LISTEN,
        port,
        servername: to,
        ca: ca.certPem,
        ...(session ? { session } : {}),
      });
      s.once("secureConnect", () => resolve(s));
      s.once("error", reject);
      s.setTimeout(10_000, () => s.destroy(new Error("timeout")));
    });

  try {
    // The first generation, then the app's instance: registered over RPC, its backend on its
    // tunnel address, its end of the tunnel up so its handshakes make it healthy.
    await startGeneration();
    const peer = generateWgKeyPair();
    const answer = await rpcRequest(rpcPort, {
      cert: issueRaTlsCert(clientCa, { appInfo: appInfoSpec(appId, newId()) }),
      body: JSON.stringify({ client_public_key: peer.publicKey }),
    });
    if (answer.status !== 200) throw new Error(`registration failed: ${answer.text}`);
    const ip = (JSON.parse(answer.text) as { wg: { client_ip: string } }).wg.client_ip;
    backend = await httpBackend("app", ip, 80);
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
    await until(
      "the app served through the proxy",
      async () => {
        const s = await open().catch(() => undefined);
        if (!s) return false;
        const status = await request(s).catch(() => "");
        s.destroy();
        return status.includes("200");
      },
      20_000,
      { context: log },
    );
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }

  return {
    engine,
    dir,
    iface,
    log,
    mainPid,
    startGeneration,
    haproxyMaster: () => haproxyMaster(engineDir) ?? 0,
    haproxyPids: () => processesMatching(engineDir),
    reconfigure(patch) {
      const next = {
        ...config,
        core: { ...config.core, proxy: { ...config.core.proxy, ...patch } },
      };
      writeFileSync(configFile, JSON.stringify(next), { mode: 0o600 });
    },
    open,
    close,
  };
}

/** One keep-alive request on `s`; resolves with the status line. */
export function request(s: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes("\r\n\r\n")) {
        s.off("data", onData);
        resolve(got.split("\r\n")[0] ?? "");
      }
    };
    const onClose = () => reject(new Error("closed"));
    s.on("data", onData);
    s.once("close", onClose);
    s.once("data", () => s.off("close", onClose));
    s.write("GET /health HTTP/1.1\r\nhost: app\r\n\r\n");
  });
}

/** A long-lived connection asking every 50 ms; counts answers and notes when it was cut. */
export function longLived(lab: HandoverLab, name?: string) {
  const state = { answers: 0, closedAt: 0, errors: 0 };
  const ready = lab.open(undefined, name).then((s) => {
    s.on("close", () => (state.closedAt = Date.now()));
    s.on("error", () => {});
    const tick = async () => {
      while (!s.destroyed) {
        try {
          if ((await request(s)).includes("200")) state.answers++;
          else state.errors++;
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    void tick();
    return s;
  });
  return { state, ready };
}

/** New connections at `perSecond`, each one request; counts the ones that failed. */
export function connectLoop(lab: HandoverLab, perSecond: number, session: Buffer | undefined) {
  const counts = { ok: 0, failed: 0, reused: 0 };
  const timer = setInterval(() => {
    lab
      .open(session)
      .then(async (s) => {
        if (s.isSessionReused()) counts.reused++;
        const status = await request(s);
        s.destroy();
        if (status.includes("200")) counts.ok++;
        else counts.failed++;
      })
      .catch(() => counts.failed++);
  }, 1000 / perSecond);
  return { counts, stop: () => clearInterval(timer) };
}
