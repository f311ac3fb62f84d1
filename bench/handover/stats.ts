/**
 * The arithmetic of scenario (u) (`handover.ts`), kept free of processes and sockets so that it
 * can be tested alone: which connection attempts fall in a hand-over's window, the longest
 * silence between accepted connections, percentiles, and a process group's CPU share from two
 * /proc samples. All times are `performance.now()` milliseconds.
 */
import { quantile } from "../registration/common.js";

/** One new connection of the connect loop. */
export interface Attempt {
  /** When the client called connect. */
  readonly startMs: number;
  /** TCP connect, then the TLS handshake done (secureConnect), both from `startMs`. */
  tcpMs?: number;
  handshakeMs?: number;
  /** Handshake and one request answered 200 with the bench body. */
  ok: boolean;
  /** Why it failed: an errno code, "timeout", or "status <line>". */
  error?: string;
}

/** A hand-over's window: connections started in it are "during", the rest "outside". */
export interface Window {
  readonly fromMs: number;
  readonly toMs: number;
}

export const inWindow = (t: number, windows: readonly Window[]): boolean =>
  windows.some((w) => t >= w.fromMs && t < w.toMs);

/**
 * The longest interval between consecutive accepted connections that overlaps [fromMs, toMs]:
 * `times` are when handshakes completed (the client's view of an accept), in any order. The
 * interval that straddles an edge counts whole (the silence began before the window); with no
 * accept before (after) the window, the window's edge stands in for it, so a window without
 * any accept reports its whole length.
 */
export function longestGap(
  times: readonly number[],
  fromMs: number,
  toMs: number,
): { ms: number; atMs: number } {
  const sorted = [...times].sort((a, b) => a - b);
  const before = sorted.filter((t) => t < fromMs).at(-1) ?? fromMs;
  const after = sorted.find((t) => t > toMs) ?? toMs;
  const points = [before, ...sorted.filter((t) => t >= fromMs && t <= toMs), after];
  let best = { ms: 0, atMs: fromMs };
  for (let i = 1; i < points.length; i++) {
    const ms = (points[i] as number) - (points[i - 1] as number);
    if (ms > best.ms) best = { ms, atMs: points[i - 1] as number };
  }
  return best;
}

export interface PhaseStats {
  readonly attempts: number;
  readonly failed: number;
  /** Failures by cause, e.g. `{ ECONNREFUSED: 3 }`. */
  readonly errors: Record<string, number>;
  /** TCP connect + TLS handshake of the successful ones, ms. */
  readonly connectP50Ms: number;
  readonly connectP99Ms: number;
  readonly connectMaxMs: number;
  /**
   * TCP connect alone: the kernel completes it from the held socket's queue whether or not a
   * generation accepts, so it stays short through a gap that the handshake shows.
   */
  readonly tcpP99Ms: number;
}

/** Counts and connect-time percentiles of some attempts. */
export function phaseStats(attempts: readonly Attempt[]): PhaseStats {
  const errors: Record<string, number> = {};
  let failed = 0;
  const connect: number[] = [];
  const tcp: number[] = [];
  for (const a of attempts) {
    if (a.tcpMs !== undefined) tcp.push(a.tcpMs);
    if (a.ok && a.handshakeMs !== undefined) connect.push(a.handshakeMs);
    else {
      failed++;
      const why = a.error ?? "unknown";
      errors[why] = (errors[why] ?? 0) + 1;
    }
  }
  connect.sort((a, b) => a - b);
  tcp.sort((a, b) => a - b);
  return {
    attempts: attempts.length,
    failed,
    errors,
    connectP50Ms: quantile(connect, 0.5),
    connectP99Ms: quantile(connect, 0.99),
    connectMaxMs: connect.at(-1) ?? Number.NaN,
    tcpP99Ms: quantile(tcp, 0.99),
  };
}

/** A /proc sample of a process group: CPU ticks (utime + stime) and RSS per live process. */
export interface GroupSample {
  readonly atMs: number;
  readonly procs: ReadonlyMap<number, { readonly ticks: number; readonly rssBytes: number }>;
}

/**
 * CPU time over wall time between two samples, in % of one core: per process alive in both,
 * so a process that exits in between neither adds nor takes away time (its last ticks are gone
 * from /proc with it).
 */
export function cpuPercent(a: GroupSample, b: GroupSample, clockTicks: number): number {
  const wallMs = b.atMs - a.atMs;
  if (!(wallMs > 0)) return Number.NaN;
  let ticks = 0;
  for (const [pid, later] of b.procs) {
    const earlier = a.procs.get(pid);
    if (earlier) ticks += later.ticks - earlier.ticks;
  }
  return (((ticks / clockTicks) * 1000) / wallMs) * 100;
}

export const groupRss = (s: GroupSample): number =>
  [...s.procs.values()].reduce((sum, p) => sum + p.rssBytes, 0);

export { quantile };
