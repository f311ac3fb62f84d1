import { spawn } from "node:child_process";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
} from "node:http";
import { createServer as createTcpServer, type Server, type Socket } from "node:net";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startHaproxyPlane } from "../../../gateway-runtime/engine/haproxy/plane.js";
import { freePort } from "../../../testkit/process.js";
import { parseGatewayConfig, type GatewayConfig } from "../../../gateway-runtime/config/index.js";
import { createLogger, type Logger, silentLogger } from "../../../gateway-runtime/log/index.js";
import {
  type CustomDomainHook,
  type DataPlane,
  DrainingFlag,
  type ProxySnapshot,
  startDataPlane,
} from "../../../gateway-runtime/proxy/index.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import { createCa, issueLeaf, TEST_DOMAIN, type TestCa } from "../../../testkit/certs.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { startDnsServer, type TestDnsServer } from "../../helpers/dns-server.js";

export { TEST_DOMAIN };

/** Ids are hex, like dstack's app and instance ids. */
export const APP_A = "a1a1a1";
export const APP_B = "b2b2b2";

/** The data plane engines a lab runs (`core.proxy.engine`). */
export const ENGINES = ["node", "haproxy"] as const;
export type Engine = (typeof ENGINES)[number];

export interface ProxyLab {
  readonly engine: Engine;
  readonly port: number;
  readonly httpPort: number;
  readonly ca: TestCa;
  readonly dns: TestDnsServer;
  readonly directory: MemoryDirectory;
  /** The Node data plane: the whole of it, or the HAProxy engine's slow path. */
  readonly plane: DataPlane;
  readonly config: GatewayConfig;
  /** This node draining (Admin.SetNodeStatus "down"): `health.<base>` answers 503. */
  readonly draining: DrainingFlag;
  /**
   * Registers an instance at a loopback address standing in for its WireGuard IP; resolves
   * once the engine holds it (HAProxy's servers and maps are updated in a reconcile pass).
   */
  addInstance(id: string, appId: string, ip: string, healthy?: boolean): Promise<void>;
  /**
   * Resolves once the engine serves the directory as it is now (HAProxy follows a change, a
   * handshake time included, in its next reconcile pass; the Node engine reads it at once).
   */
  settle(): Promise<void>;
  /** The engine's counters: with HAProxy, its `show stat` merged with the slow path's. */
  snapshot(): Promise<ProxySnapshot>;
  /** Reads `cert_chain` and `cert_key` again and serves them; throws when that fails. */
  reloadCertificate(): Promise<void>;
  /** The processes holding the data plane's connections: this one, and HAProxy's workers. */
  dataPlanePids(): Promise<number[]>;
  /** Stops the data plane (HAProxy and its slow path); `close` still cleans up. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The real data plane (same factory as `gateway run`), on 127.0.0.1 with ephemeral ports, or
 * on the HAProxy engine's slow-path socket `slowPathSocket` (then `port` is 0). With
 * `engine: "haproxy"` the whole HAProxy engine instead (engine/haproxy/plane.ts), HAProxy on
 * free ports of 127.0.0.1 and its files in a temporary state directory.
 */
export async function startProxyLab(
  overrides: Record<string, unknown> = {},
  engine: {
    engine?: Engine;
    slowPathSocket?: string;
    onCustomDomain?: CustomDomainHook;
    log?: Logger;
  } = {},
): Promise<ProxyLab> {
  const kind = engine.engine ?? "node";
  const ca = createCa();
  const leaf = issueLeaf(ca);
  const dns = await startDnsServer();
  const stateDir = mkdtempSync(join(tmpdir(), "proxy-lab-"));
  let raw = minimalConfig();
  const settings: Record<string, unknown> = {
    "core.state_path": join(stateDir, "state.json"),
    "core.proxy.listen_addr": "127.0.0.1",
    "core.proxy.cert_chain": leaf.certFile,
    "core.proxy.cert_key": leaf.keyFile,
    "core.proxy.base_domain": TEST_DOMAIN,
    "core.proxy.app_address_dns_servers": [`127.0.0.1:${dns.port}`],
    "core.proxy.timeouts.handshake": "2s",
    "core.proxy.timeouts.connect": "2s",
    "core.admin.enabled": false,
    // HAProxy binds the ports itself, so they are chosen here.
    ...(kind === "haproxy"
      ? {
          "core.proxy.engine": "haproxy",
          "core.proxy.listen_port": await freePort(),
          "core.proxy.http_port": await freePort(),
        }
      : {}),
    ...overrides,
  };
  for (const [path, value] of Object.entries(settings)) raw = withKey(raw, path, value);
  const config = parseGatewayConfig(raw, "proxy lab");
  const directory = new MemoryDirectory();
  // GATEWAY_TEST_LOG=debug shows the proxy's own log while debugging a test.
  const log =
    engine.log ??
    (process.env.GATEWAY_TEST_LOG
      ? createLogger(process.env.GATEWAY_TEST_LOG as "debug")
      : silentLogger());
  const draining = new DrainingFlag();
  const hook = engine.onCustomDomain ? { onCustomDomain: engine.onCustomDomain } : {};
  const base = { engine: kind, ca, dns, directory, config, draining };
  const cleanup = async () => {
    await dns.close();
    ca.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  };
  if (kind === "haproxy") {
    const hx = await startHaproxyPlane(config, { directory, log, draining });
    return {
      ...base,
      port: config.core.proxy.listen_port,
      httpPort: config.core.proxy.http_port,
      plane: hx.slowPath,
      async addInstance(id, appId, ip, healthy = true) {
        directory.upsert({ id, appId, ip, lastHandshakeMs: healthy ? Date.now() : 0 });
        await hx.engine.reconciler.settle();
      },
      settle: () => hx.engine.reconciler.settle(),
      async snapshot() {
        // The plane falls back to the slow path's counters alone: a test must not read those.
        const { snapshot, answered } = await hx.snapshot();
        if (answered === 0) throw new Error("haproxy's show stat did not answer");
        return snapshot;
      },
      reloadCertificate: () => hx.reloadCertificate(),
      dataPlanePids: async () => [process.pid, ...(await hx.engine.process.procs()).workers],
      stop: () => hx.stop(),
      async close() {
        await hx.stop();
        await cleanup();
      },
    };
  }
  const plane = await startDataPlane(
    config,
    { directory, log, draining, ...hook },
    engine.slowPathSocket ? { slowPathSocket: engine.slowPathSocket } : { https: 0, http: 0 },
  );
  const httpAddress = plane.redirect?.address();
  return {
    ...base,
    port: engine.slowPathSocket ? 0 : plane.proxy.address().port,
    httpPort: typeof httpAddress === "object" && httpAddress ? httpAddress.port : 0,
    plane,
    async addInstance(id, appId, ip, healthy = true) {
      directory.upsert({ id, appId, ip, lastHandshakeMs: healthy ? Date.now() : 0 });
    },
    settle: async () => {},
    snapshot: () => plane.snapshot(),
    async reloadCertificate() {
      const result = await plane.terminator.reload();
      if (!result.ok) throw new Error(`certificate reload failed: ${JSON.stringify(result)}`);
    },
    dataPlanePids: async () => [process.pid],
    stop: () => plane.stop(),
    async close() {
      await plane.stop();
      await cleanup();
    },
  };
}

export interface Backend {
  /** Accepted TCP connections so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

function track(server: Server | HttpServer, ip: string, port: number): Promise<Backend> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    accepted++;
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, ip, () =>
      resolve({
        get accepted() {
          return accepted;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}

/** HTTP/1.1 backend: answers `<name> <method> <path> <body bytes> <body sha256>`. */
export function httpBackend(name: string, ip: string, port: number): Promise<Backend> {
  const server = createHttpServer((req: IncomingMessage, res) => {
    const hash = createHash("sha256");
    let bytes = 0;
    req.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on("end", () =>
      res.end(`${name} ${req.method} ${req.url} ${bytes} ${hash.digest("hex")}\n`),
    );
  });
  server.keepAliveTimeout = 5_000;
  return track(server, ip, port);
}

/** A raw TCP backend that runs `onSocket` for each connection. */
export function tcpBackend(
  ip: string,
  port: number,
  onSocket: (s: Socket) => void,
): Promise<Backend> {
  return track(createTcpServer(onSocket), ip, port);
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a real client (curl, openssl, ssh) with a hard time bound and stdin closed or given. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 15_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** curl through the proxy for `host`, resolving it to 127.0.0.1:<proxy port>. */
export function curl(
  lab: ProxyLab,
  host: string,
  path = "/",
  extra: readonly string[] = [],
): Promise<Run> {
  return run("curl", [
    "-sS",
    "--max-time",
    "20",
    "--cacert",
    lab.ca.certFile,
    "--resolve",
    `${host}:${lab.port}:127.0.0.1`,
    ...extra,
    `https://${host}:${lab.port}${path}`,
  ]);
}
