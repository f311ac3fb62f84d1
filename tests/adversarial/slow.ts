/**
 * Slow clients (slowloris): a request whose headers, or whose body, arrive one byte at a time.
 * The declared body (2,000 bytes) is under the RPC's and the admin API's limits, so only their
 * time bounds can end it.
 * Each resolves with how long the server let it live, or `undefined` if it was still open at
 * the bound.
 */
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { TestCert } from "../../testkit/ra-tls.js";

export interface SlowTarget {
  readonly port: number;
  /** TLS with this client certificate (the RPC port); plain TCP without (the admin API). */
  readonly tls?: { readonly cert: TestCert };
  readonly path: string;
}

/** One byte every this often: slow enough that no bound of the server is reached by traffic. */
const DRIP_MS = 250;

export function slowRequest(
  target: SlowTarget,
  part: "headers" | "body",
  boundMs: number,
): Promise<number | undefined> {
  const start = performance.now();
  return new Promise((resolve) => {
    const socket: Socket = target.tls
      ? tlsConnect({
          port: target.port,
          host: "127.0.0.1",
          cert: target.tls.cert.pem,
          key: target.tls.cert.keyPem,
          rejectUnauthorized: false,
        })
      : tcpConnect({ port: target.port, host: "127.0.0.1" });
    const head =
      `POST ${target.path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n` +
      `Content-Length: 2000\r\n${part === "headers" ? `X-Slow: ${"a".repeat(10_000)}` : "\r\n"}`;
    let sent = 0;
    let drip: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      clearInterval(drip);
      clearTimeout(bound);
      socket.destroy();
      resolve(closed ? performance.now() - start : undefined);
    };
    const bound = setTimeout(() => finish(false), boundMs);
    socket.on("error", () => undefined);
    socket.on("close", () => finish(true));
    socket.resume(); // a 408 answer, if any, is read and dropped
    socket.once(target.tls ? "secureConnect" : "connect", () => {
      // Headers: all but the last 10,000 bytes at once, then a drip. Body: the head at once.
      const first = part === "headers" ? head.length - 10_000 : head.length;
      socket.write(head.slice(0, first));
      sent = first;
      drip = setInterval(() => {
        socket.write(part === "headers" ? (head[sent++] ?? "a") : "{");
      }, DRIP_MS);
    });
  });
}
