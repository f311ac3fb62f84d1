/**
 * The HAProxy engine against a real HAProxy (/usr/sbin/haproxy) on loopback: the engine's
 * directory in a temp dir, backends on random 127/8 addresses standing in for CVM WireGuard
 * addresses, and a small stand-in for the Node slow path on `node.sock` that reads the PROXY
 * v2 header, terminates TLS itself and answers with the client address it was told.
 */
import { randomInt } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket, connect as tlsConnect } from "node:tls";
import { parseGatewayConfig, type GatewayConfig } from "../../../gateway-runtime/config/index.js";
import {
  type HaproxyEngine,
  type HaproxyEngineOptions,
  startHaproxyEngine,
} from "../../../gateway-runtime/engine/haproxy/engine.js";
import { FILES } from "../../../gateway-runtime/engine/haproxy/layout.js";
import { createLogger, silentLogger } from "../../../gateway-runtime/log/index.js";
import { decodeProxyV2 } from "../../../gateway-runtime/proxy/proxy-protocol.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import {
  createCa,
  issueLeaf,
  type LeafCert,
  TEST_DOMAIN,
  type TestCa,
} from "../../../testkit/certs.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";

export { TEST_DOMAIN };

/** A free TCP port on 127.0.0.1 (bound and released; HAProxy binds it right after). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A random 127/8 address (not 127.0.0.x, which other services on the machine use). */
export function loopbackIp(): string {
  return `127.${randomInt(16, 250)}.${randomInt(1, 250)}.${randomInt(2, 250)}`;
}

export interface Lab {
  readonly dir: string;
  readonly stateDir: string;
  readonly port: number;
  readonly httpPort: number;
  readonly ca: TestCa;
  readonly leaf: LeafCert;
  readonly config: GatewayConfig;
  readonly directory: MemoryDirectory;
  engine: HaproxyEngine;
  /** Registers an instance (healthy unless told otherwise) and waits for HAProxy to hold it. */
  add(id: string, appId: string, ip: string, healthy?: boolean): Promise<void>;
  remove(id: string): Promise<void>;
  /** Runs a reconcile pass now and waits for it. */
  settle(): Promise<void>;
  /** The master's pid and its workers. */
  pids(): Promise<string>;
  /**
   * The runtime's next generation: this engine hands over (HAProxy keeps running) and a new
   * one starts on the same directory, with `overrides` on top of the first config.
   */
  nextGeneration(overrides?: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

export async function startLab(
  overrides: Record<string, unknown> = {},
  options: HaproxyEngineOptions = {},
): Promise<Lab> {
  const stateDir = mkdtempSync(join(tmpdir(), "hx-"));
  const ca = createCa();
  const leaf = issueLeaf(ca);
  const port = await freePort();
  const httpPort = await freePort();
  let base = minimalConfig();
  const settings: Record<string, unknown> = {
    "core.state_path": join(stateDir, "state.json"),
    "core.proxy.listen_addr": "127.0.0.1",
    "core.proxy.listen_port": port,
    "core.proxy.http_port": httpPort,
    "core.proxy.cert_chain": leaf.certFile,
    "core.proxy.cert_key": leaf.keyFile,
    "core.proxy.base_domain": TEST_DOMAIN,
    "core.proxy.timeouts.handshake": "2s",
    "core.proxy.timeouts.connect": "2s",
    ...overrides,
  };
  for (const [path, value] of Object.entries(settings)) base = withKey(base, path, value);
  const parse = (more: Record<string, unknown>) => {
    let raw = base;
    for (const [path, value] of Object.entries(more)) raw = withKey(raw, path, value);
    return parseGatewayConfig(raw, "haproxy engine lab");
  };
  const config = parse({});
  const directory = new MemoryDirectory();
  const log = process.env.GATEWAY_TEST_LOG
    ? createLogger(process.env.GATEWAY_TEST_LOG as "debug")
    : silentLogger();
  const dir = join(stateDir, "haproxy");
  let engine: HaproxyEngine;
  try {
    engine = await startHaproxyEngine(config, { directory, log }, { tickMs: 200, ...options });
  } catch (error) {
    ca.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
    throw error;
  }
  const lab: Lab = {
    dir,
    stateDir,
    // As configured: a test may give its own (a handed-over listener's).
    port: config.core.proxy.listen_port,
    httpPort: config.core.proxy.http_port,
    ca,
    leaf,
    config,
    directory,
    engine,
    async add(id, appId, ip, healthy = true) {
      directory.upsert({ id, appId, ip, lastHandshakeMs: healthy ? Date.now() : 0 });
      await lab.engine.reconciler.settle();
    },
    async remove(id) {
      directory.remove(id);
      await lab.engine.reconciler.settle();
    },
    settle: () => lab.engine.reconciler.settle(),
    async nextGeneration(more = {}) {
      await lab.engine.drain();
      lab.engine = await startHaproxyEngine(
        parse(more),
        { directory, log },
        { tickMs: 200, ...options },
      );
    },
    async pids() {
      const p = await lab.engine.process.procs();
      return `${p.master}:${p.workers.join(",")}`;
    },
    async close() {
      await lab.engine.stop();
      ca.cleanup();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return lab;
}

export interface Backend {
  readonly ip: string;
  readonly port: number;
  /** Connections accepted so far, and those open now. */
  readonly accepted: number;
  readonly open: number;
  close(): Promise<void>;
}

/**
 * A CVM service: answers every chunk with `<name> <port> pp=<PROXY v2 source or -> <data>`,
 * keeping the connection open (a long-lived stream echoes each ping). `tls`: it terminates
 * TLS itself (the passthrough forms).
 */
export function backend(
  name: string,
  ip: string,
  port: number,
  tls?: { cert: string; key: string },
): Promise<Backend> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  const serve = (socket: Socket, pp: string) => {
    socket.on("data", (d: Buffer) => socket.write(`${name} ${port} pp=${pp} ${d.toString()}`));
    socket.on("error", () => {});
  };
  const onRaw = (raw: Socket) => {
    accepted++;
    sockets.add(raw);
    raw.once("close", () => sockets.delete(raw));
    raw.on("error", () => {});
    raw.once("readable", () => {
      const head = (raw.read() as Buffer | null) ?? Buffer.alloc(0);
      const header = decodeProxyV2(head);
      const pp = header ? `${header.sourceAddress}` : "-";
      const rest = header ? head.subarray(header.headerLength) : head;
      if (rest.length > 0) raw.unshift(rest);
      if (!tls) return serve(raw, pp);
      const secure = new TLSSocket(raw, { isServer: true, cert: tls.cert, key: tls.key });
      serve(secure, pp);
    });
  };
  const server: Server = createServer(onRaw);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, ip, () =>
      resolve({
        ip,
        port,
        get accepted() {
          return accepted;
        },
        get open() {
          return sockets.size;
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

/** The slow path's stand-in on `<dir>/node.sock`: `slow <client address>` over its own TLS. */
export function slowPath(lab: Lab): Promise<Backend> {
  const server = createServer((raw) => {
    raw.on("error", () => {});
    raw.once("readable", () => {
      const head = (raw.read() as Buffer | null) ?? Buffer.alloc(0);
      const header = decodeProxyV2(head);
      if (!header) return raw.destroy();
      raw.unshift(head.subarray(header.headerLength));
      const secure = new TLSSocket(raw, {
        isServer: true,
        cert: readFileSync(lab.leaf.certFile),
        key: readFileSync(lab.leaf.keyFile),
      });
      secure.on("error", () => {});
      secure.on("data", () => secure.end(`slow ${header.sourceAddress}`));
    });
  });
  return new Promise((resolve) =>
    server.listen(join(lab.dir, FILES.slowPath), () =>
      resolve({
        ip: "",
        port: 0,
        accepted: 0,
        open: 0,
        close: () => new Promise<void>((done) => server.close(() => done())),
      }),
    ),
  );
}

export interface Answer {
  readonly text: string;
  readonly alpn: string | false;
  readonly serial: string;
}

/** One TLS connection through HAProxy for `name`: sends `ping`, reads one answer, closes. */
export function request(
  lab: Lab,
  name: string,
  opts: { alpn?: string[]; localAddress?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: "127.0.0.1",
      port: lab.port,
      servername: name,
      ca: lab.ca.certPem,
      // The CA is checked; the name is not (custom domains and deeper names are not covered).
      checkServerIdentity: () => undefined,
      ...(opts.alpn ? { ALPNProtocols: opts.alpn } : {}),
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${name}: no answer`));
    }, 5_000);
    socket.once("secureConnect", () => socket.write("ping"));
    socket.once("data", (d: Buffer) => {
      clearTimeout(timer);
      const answer = {
        text: d.toString(),
        alpn: socket.alpnProtocol ?? false,
        serial: socket.getPeerCertificate().serialNumber,
      };
      socket.destroy();
      resolve(answer);
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once("close", () => {
      clearTimeout(timer);
      reject(new Error(`${name}: closed without an answer`));
    });
  });
}

/** A long-lived stream: `ping()` resolves with the echo, `close()` ends it. */
export async function stream(
  lab: Lab,
  name: string,
  localAddress?: string,
): Promise<{ ping(text: string): Promise<string>; readonly closed: boolean; close(): void }> {
  const socket = tlsConnect({
    host: "127.0.0.1",
    port: lab.port,
    servername: name,
    ca: lab.ca.certPem,
    ...(localAddress ? { localAddress } : {}),
  });
  let closed = false;
  socket.on("close", () => (closed = true));
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  return {
    ping: (text) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("stream: no echo")), 5_000);
        socket.once("data", (d: Buffer) => {
          clearTimeout(timer);
          resolve(d.toString());
        });
        socket.write(text);
      }),
    get closed() {
      return closed;
    },
    close: () => socket.destroy(),
  };
}
