/**
 * Every process the bench starts, and what it reads about them from /proc. Each child leads its
 * own process group (spawned `detached`, i.e. setsid), so stopping it kills its workers too;
 * `ProcessSet` remembers every group until it is gone, and `stopAll` (from a `finally`) plus
 * `killAllNow` (from `exit`/signal handlers) make sure none outlives the bench. A child that
 * starts a group of its own (our gateway's HAProxy engine: HAProxy's master runs `setsid`, its
 * workers in its group) gets it attached (`attach`): that group is then stopped with the child
 * and counted in its CPU and memory (`procCpuUs`, `procRssBytes`).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the leader exits; never rejects. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly logFile: string;
  /** The process groups counted as this process's: its own first, then the attached ones. */
  readonly groups: ReadonlySet<number>;
}

export interface SpawnOptions {
  /** CPU list for `taskset -c` (inherited by the process's children). */
  readonly cpus?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Keep stdout as a pipe (to read a ready line or results); stderr always goes to the log. */
  readonly stdout?: "pipe" | "log";
  readonly logDir: string;
}

export class ProcessSet {
  readonly #procs = new Set<Proc>();
  /** Each process's groups (the set its `Proc.groups` shows), by its pid. */
  readonly #groups = new Map<number, Set<number>>();

  spawn(name: string, command: string, args: readonly string[], opts: SpawnOptions): Proc {
    const logFile = join(opts.logDir, `${name}.log`);
    const log = openSync(logFile, "a");
    const [cmd, argv] = opts.cpus
      ? ["taskset", ["-c", opts.cpus, command, ...args]]
      : [command, [...args]];
    let child: ChildProcess;
    try {
      child = spawn(cmd, argv, {
        detached: true,
        stdio: ["ignore", opts.stdout === "pipe" ? "pipe" : log, log],
        env: opts.env ?? process.env,
      });
    } finally {
      closeSync(log);
    }
    if (child.pid === undefined) throw new Error(`could not start ${command}`);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve) => {
        child.once("exit", (code, signal) => resolve({ code, signal }));
        child.once("error", () => resolve({ code: -1, signal: null }));
      },
    );
    const groups = new Set([child.pid]);
    this.#groups.set(child.pid, groups);
    const proc: Proc = { name, pid: child.pid, child, exited, logFile, groups };
    this.#procs.add(proc);
    void exited.then(() => {
      // the leader is gone; its groups may still hold workers, which stop() also kills
      if (![...proc.groups].some(groupAlive)) this.#procs.delete(proc);
    });
    return proc;
  }

  /** `pgid`, a group `proc` started outside its own, is stopped with it and counted as its. */
  attach(proc: Proc, pgid: number): void {
    this.#groups.get(proc.pid)?.add(pgid);
  }

  /**
   * SIGTERM to the process's own group, then to the attached ones still there (the process
   * may stop them itself), SIGKILL after `graceMs`; resolves when all are gone.
   */
  async stop(proc: Proc, graceMs = 5000): Promise<void> {
    for (const pgid of proc.groups) {
      signalGroup(pgid, "SIGTERM");
      const deadline = Date.now() + graceMs;
      while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
      if (groupAlive(pgid)) {
        signalGroup(pgid, "SIGKILL");
        const hard = Date.now() + 2000;
        while (groupAlive(pgid) && Date.now() < hard) await sleep(20);
      }
    }
    await Promise.race([proc.exited, sleep(1000)]);
    this.#procs.delete(proc);
    this.#groups.delete(proc.pid);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#procs].map((p) => this.stop(p, 3000)));
  }

  /** Synchronous last resort for `exit` handlers. */
  killAllNow(): void {
    for (const p of this.#procs) for (const pgid of p.groups) signalGroup(pgid, "SIGKILL");
    this.#procs.clear();
    this.#groups.clear();
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is gone already
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Stat {
  readonly pid: number;
  readonly pgrp: number;
  readonly state: string;
  /** utime + stime, clock ticks. */
  readonly ticks: number;
  /** cutime + cstime: the ticks of its children that exited and were waited for. */
  readonly childTicks: number;
}

/** One process's /proc/<pid>/stat; undefined once it is gone. */
export function readStat(pid: string): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // exited between readdir and read
  }
  // comm may hold spaces and parentheses: the fields start after the last ')'
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    pid: Number(pid),
    state: f[0] ?? "?",
    pgrp: Number(f[2]),
    ticks: Number(f[11]) + Number(f[12]),
    childTicks: Number(f[13]) + Number(f[14]),
  };
}

/** The live (not zombie) processes of a process group. */
export function groupMembers(pgid: number): Stat[] {
  const out: Stat[] = [];
  for (const name of readdirSync("/proc")) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const s = readStat(name);
    if (s && s.pgrp === pgid && s.state !== "Z") out.push(s);
  }
  return out;
}

export function groupAlive(pgid: number): boolean {
  return groupMembers(pgid).length > 0;
}

export const CLK_TCK = Number(
  spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim() || "100",
);

/** CPU time (user + system) of every live process in the group, in microseconds. */
export function groupCpuUs(pgid: number): number {
  const ticks = groupMembers(pgid).reduce((sum, s) => sum + s.ticks, 0);
  return (ticks * 1e6) / CLK_TCK;
}

/** CPU time of every live process in the process's groups (`Proc.groups`), in microseconds. */
export function procCpuUs(proc: Proc): number {
  let us = 0;
  for (const pgid of proc.groups) us += groupCpuUs(pgid);
  return us;
}

/** Resident set size of one process in bytes; 0 once it has exited. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return Number(m?.[1] ?? 0) * 1024;
  } catch {
    return 0; // exited meanwhile
  }
}

/** Resident set size of every live process in the group, in bytes. */
export function groupRssBytes(pgid: number): number {
  return groupMembers(pgid).reduce((sum, s) => sum + rssBytes(s.pid), 0);
}

/** Resident set size of every live process in the process's groups, in bytes. */
export function procRssBytes(proc: Proc): number {
  let bytes = 0;
  for (const pgid of proc.groups) bytes += groupRssBytes(pgid);
  return bytes;
}

export interface CoreTimes {
  readonly busy: number;
  readonly total: number;
}

/** Busy and total jiffies per CPU, from /proc/stat. */
export function coreTimes(): Map<number, CoreTimes> {
  const out = new Map<number, CoreTimes>();
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const v = (m[2] ?? "").trim().split(/\s+/).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // without guest (counted in user)
    out.set(Number(m[1]), { busy: total - idle, total });
  }
  return out;
}

/** Share of time the listed CPUs were busy between two `coreTimes()` samples (0..1). */
export function busyShare(
  before: Map<number, CoreTimes>,
  after: Map<number, CoreTimes>,
  cpus: readonly number[],
): number {
  let busy = 0;
  let total = 0;
  for (const c of cpus) {
    const a = before.get(c);
    const b = after.get(c);
    if (!a || !b) continue;
    busy += b.busy - a.busy;
    total += b.total - a.total;
  }
  return total > 0 ? busy / total : 0;
}
