/**
 * The arithmetic of the engine spike's route-change run (`route-change.ts`), free of processes
 * and sockets so that it can be tested alone: a proxy's CPU time that survives its workers
 * exiting, and what a window of route changes costs over the same time without changes.
 * Percentiles and connect statistics are scenario (u)'s (`bench/handover/stats.ts`).
 */
import type { Stat } from "../lib/procs.js";

/**
 * All CPU ticks a process group has used so far: those of its live members, plus those of the
 * children the leader has reaped (cutime + cstime). An nginx reload retires workers: without
 * the leader's child ticks, their CPU would leave the sum with them.
 */
export function groupTicksTotal(members: readonly Stat[], leaderPid: number): number {
  let ticks = 0;
  for (const m of members) {
    ticks += m.ticks;
    if (m.pid === leaderPid) ticks += m.childTicks;
  }
  return ticks;
}

/** A /proc sample of the proxy's group. */
export interface Sample {
  readonly atMs: number;
  /** `groupTicksTotal`. */
  readonly ticks: number;
  readonly rssBytes: number;
  readonly procs: number;
}

/** CPU over a window: µs used, and % of one core. */
export interface WindowCpu {
  readonly cpuUs: number;
  readonly wallMs: number;
}

/**
 * CPU between the last sample at or before `fromMs` and the first at or after `toMs`; NaN
 * without samples on both sides.
 */
export function windowCpu(
  samples: readonly Sample[],
  fromMs: number,
  toMs: number,
  clockTicks: number,
): WindowCpu {
  const a = samples.filter((s) => s.atMs <= fromMs).at(-1);
  const b = samples.find((s) => s.atMs >= toMs);
  if (!a || !b) return { cpuUs: Number.NaN, wallMs: Number.NaN };
  return { cpuUs: ((b.ticks - a.ticks) * 1e6) / clockTicks, wallMs: b.atMs - a.atMs };
}

/** % of one core. */
export const corePercent = (w: WindowCpu): number => (w.cpuUs / 1000 / w.wallMs) * 100;

/**
 * CPU a change costs: the window's CPU above what the proxy used at the rate of the windows
 * without changes (the same load, connections and streams), over the number of changes.
 */
export function cpuPerChangeUs(
  during: WindowCpu,
  outside: readonly WindowCpu[],
  changes: number,
): number {
  const cpu = outside.reduce((s, w) => s + w.cpuUs, 0);
  const wall = outside.reduce((s, w) => s + w.wallMs, 0);
  if (!(wall > 0) || !(changes > 0)) return Number.NaN;
  return (during.cpuUs - (cpu / wall) * during.wallMs) / changes;
}
