/**
 * Reads every process of the soak's gateway from /proc at a fixed period: the primary, each
 * proxy worker (its children running `proxy-worker`, found again at every sample, so a
 * replacement is seen), and the wireguard-go it started (not our code, but its peers churn
 * with the registrations). Per process: VmRSS from `status`, the entries of `fd`, and utime +
 * stime from `stat`. A process that ends between two reads is simply not in that sample.
 */
import { readdirSync, readFileSync } from "node:fs";
import { processesMatching } from "../../testkit/netns.js";
import { CLK_TCK } from "../lib/procs.js";
import type { ProcessSeries, ProcSample, Role } from "./stats.js";

interface Stat {
  readonly ppid: number;
  readonly cpuS: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces and parentheses: the fields start after the last ')'
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    if (f[0] === "Z") return undefined;
    return { ppid: Number(f[1]), cpuS: (Number(f[11]) + Number(f[12])) / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** One reading of `pid`; undefined once it is gone. */
export function readProcess(pid: number, atMs: number): ProcSample | undefined {
  try {
    const stat = readStat(pid);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (!stat || !rss) return undefined;
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    return { atMs, rssKiB: Number(rss[1]), fds, cpuS: stat.cpuS };
  } catch {
    return undefined;
  }
}

/** The live children of `parent` whose command line contains `needle`. */
function childrenRunning(parent: number, needle: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (readStat(pid)?.ppid !== parent) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(needle)) out.push(pid);
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

export class Sampler {
  readonly #primary: number;
  /** wireguard-go's command line names the interface. */
  readonly #wgNeedle: string;
  readonly #start: number;
  readonly #series = new Map<number, { role: Role; samples: ProcSample[] }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(primaryPid: number, wgInterface: string, startMs: number) {
    this.#primary = primaryPid;
    this.#wgNeedle = `wireguard-go -f ${wgInterface}`;
    this.#start = startMs;
  }

  /** The workers' pids right now. */
  workers(): number[] {
    return childrenRunning(this.#primary, "proxy-worker");
  }

  /** Reads every process once, now. */
  sample(): void {
    const atMs = performance.now() - this.#start;
    const procs: [number, Role][] = [
      [this.#primary, "primary"],
      ...this.workers().map((pid): [number, Role] => [pid, "worker"]),
      ...processesMatching(this.#wgNeedle).map((pid): [number, Role] => [pid, "wireguard-go"]),
    ];
    for (const [pid, role] of procs) {
      const s = readProcess(pid, atMs);
      if (!s) continue;
      let series = this.#series.get(pid);
      if (!series) {
        series = { role, samples: [] };
        this.#series.set(pid, series);
      }
      series.samples.push(s);
    }
  }

  start(everyMs: number): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), everyMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  series(): ProcessSeries[] {
    const order: Role[] = ["primary", "worker", "wireguard-go"];
    return [...this.#series.entries()]
      .map(([pid, s]) => ({ pid, role: s.role, samples: s.samples }))
      .sort((a, b) => order.indexOf(a.role) - order.indexOf(b.role) || a.pid - b.pid);
  }
}
