/** Loopback helpers: ephemeral ports, readiness waits, and a one-request TLS probe. */
import { createServer, connect as tcpConnect } from "node:net";
import type { Readable } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { type Proc, sleep } from "./procs.js";

export const HOST = "127.0.0.1";

/** An ephemeral port the kernel just handed out on 127.0.0.1 (for programs that need a number). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host: HOST, port: 0 }, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port"))));
    });
  });
}

function canConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Waits until `port` accepts connections; throws after `timeoutMs` or when `proc` exits. */
export async function waitForPort(
  port: number,
  proc: Proc,
  timeoutMs = 10_000,
  host = HOST,
): Promise<void> {
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${proc.name} exited while starting; see ${proc.logFile}`);
    if (await canConnect(port, host)) return;
    await sleep(50);
  }
  throw new Error(
    `${proc.name} not listening on ${port} after ${timeoutMs} ms; see ${proc.logFile}`,
  );
}

/** Calls `onLine` for each stdout line until it returns a value; bounded by `timeoutMs`. */
export function readLineUntil<T>(
  stream: Readable,
  onLine: (line: string) => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const done = (fn: () => void): void => {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", onEnd);
      fn();
    };
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString("utf8");
      let nl = buffer.indexOf("\n");
      while (nl !== -1) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const value = onLine(line);
        if (value !== undefined) {
          done(() => resolve(value));
          return;
        }
        nl = buffer.indexOf("\n");
      }
    };
    const onEnd = (): void => done(() => reject(new Error(`${what}: output ended first`)));
    const timer = setTimeout(
      () => done(() => reject(new Error(`${what}: nothing after ${timeoutMs} ms`))),
      timeoutMs,
    );
    stream.on("data", onData);
    stream.once("end", onEnd);
  });
}

/**
 * One HTTP/1.1 request over TLS with the given SNI; resolves with the status line, the body
 * length and the negotiated protocol and cipher. Used to check each route before measuring.
 */
export function probe(
  port: number,
  servername: string,
  path: string,
  timeoutMs = 5000,
): Promise<{ status: string; bodyBytes: number; protocol: string; cipher: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: HOST, port, servername, rejectUnauthorized: false });
    const chunks: Buffer[] = [];
    let protocol = "?";
    let cipher = "?";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`probe ${servername}:${port}${path}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("secureConnect", () => {
      protocol = socket.getProtocol() ?? "?";
      cipher = socket.getCipher()?.name ?? "?";
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`probe ${servername}:${port}${path}: ${e.message}`));
    });
    socket.once("close", () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const head = all.indexOf("\r\n\r\n");
      resolve({
        status: all.subarray(0, all.indexOf("\r\n")).toString("latin1"),
        bodyBytes: head === -1 ? 0 : all.length - head - 4,
        protocol,
        cipher,
      });
    });
  });
}
