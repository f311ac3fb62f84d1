/**
 * The clients of scenario (u), in the harness process on the client core:
 * - a connect loop: new TLS connections at a steady rate, each a full handshake (no session
 *   offered) and one small request through the terminating route to the bench backend, timed
 *   (TCP connect, handshake) so a hand-over's silence and its queued connections show;
 * - long-lived streams: connections through the terminating route to an echo server of our
 *   own, each sending a few bytes a second and counting the echoes, so a draining generation
 *   has work that must go on until the client ends it.
 * Each connection is bounded by a timeout; nothing here retries.
 */
import { createServer, type Server, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { HOST } from "../lib/net.js";
import { sleep } from "../lib/procs.js";
import { SMALL_BODY } from "../lib/targets.js";
import type { Attempt } from "./stats.js";

const ATTEMPT_TIMEOUT_MS = 10_000;
/** How often the loop looks whether a connection is due; it starts every due one at once. */
const TICK_MS = 1;

interface Route {
  readonly port: number;
  readonly servername: string;
}

/** What every client offers: TLS 1.3 with X25519, as the bench's other clients (h2load, wrk). */
function open(route: Route): TLSSocket {
  return tlsConnect({
    host: HOST,
    port: route.port,
    servername: route.servername,
    rejectUnauthorized: false, // the bench certificate; what is measured is not the client's check
    ecdhCurve: "X25519",
  });
}

function attempt(route: Route, done: (a: Attempt) => void): void {
  const a: Attempt = { startMs: performance.now(), ok: false };
  const s = open(route);
  const chunks: Buffer[] = [];
  let finished = false;
  const finish = (error?: string) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (error === undefined) {
      const text = Buffer.concat(chunks).toString("latin1");
      const status = text.slice(0, text.indexOf("\r\n"));
      a.ok = status.includes(" 200") && text.endsWith(`\r\n\r\n${SMALL_BODY}`);
      if (!a.ok) a.error = `status ${status || "(none)"}`;
    } else a.error = error;
    s.destroy();
    done(a);
  };
  const timer = setTimeout(() => finish("timeout"), ATTEMPT_TIMEOUT_MS);
  s.once("connect", () => {
    a.tcpMs = performance.now() - a.startMs;
  });
  s.once("secureConnect", () => {
    a.handshakeMs = performance.now() - a.startMs;
    s.write(`GET / HTTP/1.1\r\nHost: ${route.servername}\r\nConnection: close\r\n\r\n`);
  });
  s.on("data", (c: Buffer) => chunks.push(c));
  s.once("error", (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  s.once("close", () =>
    finish(a.handshakeMs === undefined ? "closed before the handshake" : undefined),
  );
}

/** New connections at `perSecond` until `stop()`, which resolves once every one has ended. */
export function connectLoop(route: Route, perSecond: number) {
  const attempts: Attempt[] = [];
  let inFlight = 0;
  let started = 0;
  const t0 = performance.now();
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) * perSecond) / 1000) + 1;
    for (; started < due; started++) {
      inFlight++;
      attempt(route, (a) => {
        attempts.push(a);
        inFlight--;
      });
    }
  }, TICK_MS);
  return {
    attempts,
    async stop(): Promise<void> {
      clearInterval(timer);
      const deadline = performance.now() + ATTEMPT_TIMEOUT_MS + 1000;
      while (inFlight > 0 && performance.now() < deadline) await sleep(20);
    },
  };
}

/** A TCP echo server (the backend of the streams); the route's port names it. */
export async function echoServer(): Promise<Server> {
  const server = createServer((s: Socket) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: HOST, port: 0 }, resolve);
  });
  return server;
}

export interface Stream {
  /** Echoed bytes received so far. */
  received: number;
  /** Closed without our `end()` (cut by the gateway, or an error). */
  cut: boolean;
  closedAtMs: number | undefined;
}

/**
 * `count` streams through `route`, each writing `bytes` every second (spread over the second)
 * once open. Resolves once every one has its first echo; `close()` ends them all from our side
 * and resolves with when the last one closed.
 */
export async function openStreams(route: Route, count: number, bytes: number) {
  const streams: Stream[] = [];
  const sockets: TLSSocket[] = [];
  const timers: NodeJS.Timeout[] = [];
  let ending = false;
  const payload = Buffer.alloc(bytes, 0x73);
  await Promise.all(
    Array.from({ length: count }, (_, k) => {
      const st: Stream = { received: 0, cut: false, closedAtMs: undefined };
      streams.push(st);
      return new Promise<void>((resolve, reject) => {
        const s = open(route);
        sockets.push(s);
        const timer = setTimeout(
          () => reject(new Error(`stream ${k}: no echo in ${ATTEMPT_TIMEOUT_MS} ms`)),
          ATTEMPT_TIMEOUT_MS,
        );
        s.on("data", (c: Buffer) => {
          st.received += c.length;
          if (st.received >= bytes) {
            clearTimeout(timer);
            resolve();
          }
        });
        s.on("error", () => {});
        s.once("close", () => {
          st.closedAtMs = performance.now();
          if (!ending) st.cut = true;
          clearTimeout(timer);
          reject(new Error(`stream ${k} closed while opening`));
        });
        s.once("secureConnect", () => {
          s.write(payload);
          // Spread over the second, so the gateway sees a steady trickle, not a burst a second.
          const first = setTimeout(
            () => {
              timers.push(setInterval(() => s.writable && s.write(payload), 1000));
            },
            (1000 * k) / count,
          );
          timers.push(first);
        });
      });
    }),
  );
  return {
    streams,
    /** Ends every stream (TLS close_notify, then FIN) and resolves with the last close. */
    async close(): Promise<number | undefined> {
      ending = true;
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.end();
      const deadline = performance.now() + ATTEMPT_TIMEOUT_MS;
      while (streams.some((st) => st.closedAtMs === undefined) && performance.now() < deadline)
        await sleep(5);
      for (const s of sockets) s.destroy();
      if (streams.some((st) => st.closedAtMs === undefined)) return undefined;
      return Math.max(...streams.map((st) => st.closedAtMs as number));
    },
  };
}
