/**
 * One DNS exchange over TCP (RFC 1035 §4.2.2, RFC 7766): a two-octet length, then the message;
 * the answer comes back the same way. TCP carries any size, so a CAA set never needs a retry
 * on truncation. Bounded by a timeout and an AbortSignal; the socket is always closed.
 */
import { Buffer } from "node:buffer";
import { connect } from "node:net";

export interface Endpoint {
  readonly host: string;
  readonly port: number;
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

export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

export function exchangeTcp(
  server: Endpoint,
  message: Buffer,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const where = formatEndpoint(server);
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    const socket = connect({ host: server.host, port: server.port });
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (error: unknown, answer?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      if (answer) resolve(answer);
      else reject(error);
    };
    const onAbort = (): void => finish(opts.signal?.reason);
    const timer = setTimeout(
      () => finish(new Error(`no DNS answer from ${where} within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    opts.signal?.addEventListener("abort", onAbort, { once: true });
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
  });
}
