/**
 * The byte bridge between a client and the backend the gateway picked (DESIGN §2), for TLS
 * passthrough (the client is the raw TCP socket) and after termination (a `tls.TLSSocket`).
 *
 * Not `pipe()`/`pipeline()`: `pipe()` leaves a reader paused when the other side closes first,
 * so its own close is never read and descriptors leak (DESIGN §7). Here:
 * - Backpressure: a direction pauses its reader when `write()` returns false and resumes on
 *   `drain`, so a writable holds at most its high-water mark plus one chunk.
 * - Half-close: when one side ends, the other side's writable is ended and the other direction
 *   keeps flowing until it ends too; `shutdownMs` bounds that phase. Both sockets are switched
 *   to `allowHalfOpen` (Node documents the property as settable before `end`), else Node ends a
 *   writable by itself when its peer's FIN arrives and a late reply is lost.
 * - Settles exactly once, with both directions ended and flushed (`closed`), a timeout, a
 *   socket error or close of either side, or the abort signal; then it clears its timer and
 *   destroys both sockets.
 * - One timer per bridge, armed for the nearest deadline (idle, write, shutdown, total). Data
 *   only moves a timestamp; when the timer fires it settles or re-arms for what is left.
 *
 * The bridge owns both sockets from the call on: the caller has removed its own `data` and
 * `readable` listeners and hands over any bytes it already read as `initial`.
 */
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { ReusedReads } from "./read-buffers.js";

export interface BridgeTimeouts {
  /** No byte moved either way for this long ends the bridge (`idle`). */
  readonly idleMs: number;
  /** A write that stays un-drained for this long ends the bridge (`write`). */
  readonly writeMs: number;
  /** Bounds the half-closed phase after the first side ends (`shutdown`). */
  readonly shutdownMs: number;
  /** Caps the bridge's life (`total`); `Infinity` for none. */
  readonly totalMs: number;
  /** False switches `idleMs` and `writeMs` off. */
  readonly dataTimeouts: boolean;
}

export type BridgeEnd =
  | "closed"
  | "idle"
  | "write"
  | "shutdown"
  | "total"
  | "client-error"
  | "backend-error"
  | "aborted";

export interface BridgeResult {
  readonly end: BridgeEnd;
  /** Client bytes written to the backend, `initial` included. */
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  /** The socket error behind `client-error`/`backend-error`; absent when the socket closed
   * early without one (destroyed by someone else). */
  readonly error?: Error;
}

export interface BridgeOptions {
  /** Client bytes already read (the buffered ClientHello, a PROXY header): sent first. */
  readonly initial?: Buffer;
  /** Aborting ends the bridge at once with `aborted` (gateway shutdown). */
  readonly signal?: AbortSignal;
  /** The backend socket reads into reused buffers (`raceConnect`'s `reuseReads`). */
  readonly backendReads?: ReusedReads;
}

type Side = "client" | "backend";

/** One direction: bytes read from `src` are written to `dst`. */
interface Flow {
  readonly src: Socket;
  readonly dst: Socket;
  bytes: number;
  /** When `dst.write()` last returned false, until `drain`. */
  blockedSince: number | undefined;
  /** `src` ended and `dst.end()` was called. */
  ended: boolean;
  /** `dst` flushed everything after `end()`. */
  flushed: boolean;
}

/** setTimeout turns longer delays into 1 ms. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export function bridge(
  client: Socket,
  backend: Socket,
  timeouts: BridgeTimeouts,
  options: BridgeOptions = {},
): Promise<BridgeResult> {
  const { idleMs, writeMs, shutdownMs, totalMs, dataTimeouts } = timeouts;
  const { initial, signal, backendReads } = options;
  const flow = (src: Socket, dst: Socket): Flow => ({
    src,
    dst,
    bytes: 0,
    blockedSince: undefined,
    ended: false,
    flushed: false,
  });
  const up = flow(client, backend);
  const down = flow(backend, client);
  const start = performance.now();
  let lastActivity = start;
  let halfClosedAt: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let armedFor = Number.POSITIVE_INFINITY;
  let settled = false;

  return new Promise<BridgeResult>((resolve) => {
    const settle = (end: BridgeEnd, error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      client.destroy();
      backend.destroy();
      const bytes = { bytesToBackend: up.bytes, bytesToClient: down.bytes };
      resolve(error === undefined ? { end, ...bytes } : { end, ...bytes, error });
    };
    const onAbort = (): void => settle("aborted");

    const nextDeadline = (): [BridgeEnd, number] => {
      let next: [BridgeEnd, number] = ["total", start + totalMs];
      const consider = (end: BridgeEnd, at: number): void => {
        if (at < next[1]) next = [end, at];
      };
      if (halfClosedAt !== undefined) consider("shutdown", halfClosedAt + shutdownMs);
      if (dataTimeouts) {
        consider("idle", lastActivity + idleMs);
        for (const f of [up, down]) {
          if (f.blockedSince !== undefined) consider("write", f.blockedSince + writeMs);
        }
      }
      return next;
    };
    const arm = (at: number): void => {
      if (settled || !(at < armedFor)) return; // also skips NaN and Infinity
      clearTimeout(timer);
      armedFor = at;
      const delay = Math.min(MAX_DELAY_MS, Math.max(1, Math.ceil(at - performance.now())));
      timer = setTimeout(onTimer, delay).unref();
    };
    const onTimer = (): void => {
      timer = undefined;
      armedFor = Number.POSITIVE_INFINITY;
      const [end, at] = nextDeadline();
      if (at <= performance.now()) settle(end);
      else arm(at);
    };

    const block = (f: Flow): void => {
      if (f.blockedSince !== undefined) return;
      f.blockedSince = performance.now();
      f.src.pause();
      f.dst.once("drain", () => {
        f.blockedSince = undefined;
        lastActivity = performance.now();
        if (!settled) f.src.resume();
      });
      if (dataTimeouts) arm(f.blockedSince + writeMs);
    };
    const onEnd = (f: Flow): void => {
      f.ended = true;
      f.dst.end();
      if (halfClosedAt === undefined) {
        halfClosedAt = performance.now();
        arm(halfClosedAt + shutdownMs);
      }
    };

    if (client.destroyed || backend.destroyed) {
      settle(client.destroyed ? "client-error" : "backend-error");
      return;
    }
    if (signal?.aborted) {
      settle("aborted");
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });

    for (const [socket, side, reading, writing] of [
      [client, "client", up, down],
      [backend, "backend", down, up],
    ] as const satisfies readonly (readonly [Socket, Side, Flow, Flow])[]) {
      socket.allowHalfOpen = true;
      socket.on("error", (error: Error) => settle(`${side}-error`, error));
      socket.on("close", () => {
        // a clean close follows 'end' and 'finish'; anything else is an abrupt close
        if (!(reading.ended && writing.flushed)) settle(`${side}-error`);
      });
      const onData = (chunk: Buffer): void => {
        reading.bytes += chunk.length;
        lastActivity = performance.now();
        if (!reading.dst.write(chunk)) block(reading);
      };
      if (side === "backend" && backendReads) {
        backendReads.consume((chunk) => {
          onData(chunk);
          if (reading.dst.writableLength > 0) backendReads.retain(); // queued, not yet written
        });
        socket.once("close", () => backendReads.release());
      } else {
        socket.on("data", onData);
      }
      socket.on("end", () => onEnd(reading));
      socket.on("finish", () => {
        writing.flushed = true;
        if (up.flushed && down.flushed) settle("closed");
      });
    }

    if (initial !== undefined && initial.length > 0) {
      up.bytes += initial.length;
      if (!backend.write(initial)) block(up);
    }
    for (const f of [up, down]) {
      if (f.src.readableEnded) onEnd(f);
      else if (f.blockedSince === undefined) f.src.resume();
    }
    arm(nextDeadline()[1]);
  });
}
