/**
 * One DNS exchange with one server, over TCP (RFC 1035 §4.2.2, RFC 7766: a two-octet length,
 * then the message, both ways) or UDP (§4.2.1: one datagram each way). Each is bounded by a
 * timeout and an AbortSignal, and its socket is always closed.
 */
import { Buffer } from "node:buffer";
import { createSocket } from "node:dgram";
import { connect, isIP } from "node:net";

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface ExchangeOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** Parses `ip:port`, `[v6]:port` or a bare IP (port 53). */
export function parseEndpoint(text: string): Endpoint {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) return { host: v6[1] as string, port: Number(v6[2] ?? 53) };
  const colon = text.lastIndexOf(":");
  if (colon > 0 && text.indexOf(":") === colon) {
    return { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
  }
  return { host: text, port: 53 };
}

/** `parseEndpoint` for servers a socket is sent to: the host must be an IP, the port valid. */
export function parseIpEndpoint(text: string): Endpoint {
  const e = parseEndpoint(text);
  const port = Number.isInteger(e.port) && e.port > 0 && e.port < 65536;
  if (isIP(e.host.replace(/%.*$/, "")) === 0 || !port) {
    throw new Error(`"${text}" is not an IP address with an optional port`);
  }
  return e;
}

export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

type Finish = (error: unknown, answer?: Buffer) => void;

/**
 * Runs `start` under the timeout and the signal; `start` gets `finish` and returns what closes
 * its socket. The first of answer, error, timeout or abort settles the promise.
 */
function bounded(
  server: Endpoint,
  opts: ExchangeOptions,
  start: (finish: Finish) => () => void,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    let settled = false;
    let close = (): void => {};
    const finish: Finish = (error, answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      close();
      if (answer) resolve(answer);
      else reject(error);
    };
    const onAbort = (): void => finish(opts.signal?.reason);
    const where = formatEndpoint(server);
    const timer = setTimeout(
      () => finish(new Error(`no DNS answer from ${where} within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    close = start(finish);
    if (settled) close();
  });
}

/** TCP carries any size, so an answer is never truncated. */
export function exchangeTcp(
  server: Endpoint,
  message: Buffer,
  opts: ExchangeOptions,
): Promise<Buffer> {
  const where = formatEndpoint(server);
  return bounded(server, opts, (finish) => {
    const socket = connect({ host: server.host, port: server.port });
    let received = Buffer.alloc(0);
    socket.on("connect", () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(message.length);
      socket.write(Buffer.concat([len, message]));
    });
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2) return;
      const want = received.readUInt16BE(0);
      if (received.length >= 2 + want) finish(undefined, received.subarray(2, 2 + want));
    });
    socket.on("error", (e) => finish(new Error(`DNS over TCP to ${where}: ${e.message}`)));
    socket.on("close", () => finish(new Error(`${where} closed the connection without an answer`)));
    return () => socket.destroy();
  });
}

/**
 * The socket is connected to the server, so datagrams from anyone else are dropped by the
 * kernel and an ICMP refusal ends the exchange at once. Datagrams for which `isAnswer` is false
 * (another ID: a late answer to an earlier query, or a forgery) are ignored.
 */
export function exchangeUdp(
  server: Endpoint,
  message: Buffer,
  opts: ExchangeOptions & { readonly isAnswer: (datagram: Buffer) => boolean },
): Promise<Buffer> {
  const where = formatEndpoint(server);
  return bounded(server, opts, (finish) => {
    const socket = createSocket(server.host.includes(":") ? "udp6" : "udp4");
    socket.on("message", (datagram) => {
      if (opts.isAnswer(datagram)) finish(undefined, datagram);
    });
    socket.on("error", (e) => finish(new Error(`DNS over UDP to ${where}: ${e.message}`)));
    socket.connect(server.port, server.host, () => socket.send(message));
    return () => {
      try {
        socket.close();
      } catch {
        // already closed after an error
      }
    };
  });
}
