/**
 * Raw TCP clients of the proxy port: each case writes byte ranges (with pauses between them),
 * maybe half-closes, and waits, within a bound, for the gateway to close the connection or to
 * answer with a TLS ServerHello. Many cases run at once, a bounded number at a time.
 */
import { Buffer } from "node:buffer";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface RawCase {
  readonly segments: readonly Buffer[];
  /** Pause between two segments. @default 0 */
  readonly gapMs?: number;
  /** Half-close after the last segment. */
  readonly end: boolean;
  /** What ends the case: the gateway closing, or the first bytes of a ServerHello. */
  readonly until: "close" | "server-hello";
  /** Local address to connect from (spreads a burst's ports over several addresses). */
  readonly from?: string;
}

export interface RawOutcome {
  /** The gateway closed (or reset) the connection, or answered, within the bound. */
  readonly done: boolean;
  readonly ms: number;
  /** From the connection's establishment to its end (what the gateway's timeouts bound). */
  readonly openMs: number;
  /** The first bytes the gateway sent. */
  readonly head: Buffer;
  readonly error?: string;
}

export function runRaw(port: number, c: RawCase, boundMs: number): Promise<RawOutcome> {
  const start = performance.now();
  return new Promise((resolve) => {
    let head = Buffer.alloc(0);
    let error: string | undefined;
    let connected = Number.NaN;
    const socket = connect({
      port,
      host: "127.0.0.1",
      noDelay: true,
      ...(c.from ? { localAddress: c.from } : {}),
    });
    const finish = (done: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      const now = performance.now();
      const ms = now - start;
      resolve({ done, ms, openMs: now - connected, head, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(false), boundMs);
    socket.on("data", (chunk: Buffer) => {
      if (head.length < 64) head = Buffer.concat([head, chunk]).subarray(0, 64);
      if (c.until === "server-hello" && head.length >= 6) finish(true);
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on("close", () => finish(error !== "ECONNREFUSED"));
    socket.on("connect", async () => {
      connected = performance.now();
      for (const [i, segment] of c.segments.entries()) {
        if (i > 0 && c.gapMs) await sleep(c.gapMs);
        if (socket.destroyed) return;
        socket.write(segment);
      }
      if (c.end && !socket.destroyed) socket.end();
    });
  });
}

/** Runs `fn` over `items`, at most `width` at a time; results in order. */
export async function pool<T, R>(
  items: readonly T[],
  width: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T, i);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return out;
}

/** A small seeded generator (mulberry32), so every run sends the same cases. */
export function prng(seed: number): (below: number) => number {
  let a = seed >>> 0;
  return (below) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * below);
  };
}
