/**
 * Generations of our bench gateway on sockets that outlive them, for scenario (u): the lab's
 * stand-in for systemd's socket units (`lab/shims/socket-holder.mjs`) binds the TLS port once
 * and hands it to every start as LISTEN_FDS, as `gateway-tls.socket` does. A generation is
 * `bench/.build/gateway-bench.mjs` (the real data plane and proxy workers, `gateway run`'s
 * hand-over path, with the bench's static instance), started by the holder's `start` script as
 * systemd's ExecStart would be, in a session of its own: its primary's pid is its process
 * group, which its workers keep after the primary exits, so the group is "the generation".
 * The two orders of a hand-over: `restart` is what `systemctl restart` does to the unit
 * (`host/files.ts`: stop, i.e. SIGTERM to the main process only (KillMode=process) and wait for
 * it to exit, then start), `startFirst` starts the next generation and SIGTERMs the old one once
 * the next one serves.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HOST } from "../lib/net.js";
import {
  groupMembers,
  type Proc,
  type ProcessSet,
  readStat,
  rssBytes,
  sleep,
} from "../lib/procs.js";
import type { GroupSample } from "./stats.js";

const HOLDER = new URL("../../lab/shims/socket-holder.mjs", import.meta.url).pathname;
/** What systemd's stop waits for the main process, in the lab's shim too (then SIGKILL). */
const STOP_TIMEOUT_MS = 10_000;
const READY_TIMEOUT_MS = 30_000;
/** Polling the old main's exit stands in for systemd's SIGCHLD: short, it adds to the gap. */
const EXIT_POLL_MS = 2;

export interface GenerationOptions {
  readonly ps: ProcessSet;
  readonly dir: string;
  readonly port: number;
  /** The gateway's cores (`taskset -c`); the holder is pinned there and every start inherits it. */
  readonly cpus: string;
  /** The bench gateway bundle and its node flags (the unit's). */
  readonly entry: string;
  readonly nodeFlags: readonly string[];
  readonly certFile: string;
  readonly keyFile: string;
  readonly appId: string;
}

/** What a hand-over took, ms from its first step. */
export interface HandoverTimes {
  readonly order: "restart" | "start-first";
  readonly startMs: number;
  /** The old main process gone. */
  readonly oldMainExitMs: number;
  /** The new generation's ready file written (it serves). */
  readonly newReadyMs: number;
}

export class Generations {
  readonly #o: GenerationOptions;
  readonly #holder: Proc;
  readonly #holderDir: string;
  /** Every generation started, so that none outlives the bench. */
  readonly started: number[] = [];
  /** The generation now serving. */
  current = 0;

  private constructor(o: GenerationOptions, holder: Proc, holderDir: string) {
    this.#o = o;
    this.#holder = holder;
    this.#holderDir = holderDir;
  }

  /** Starts the holder on `port` and the first generation. */
  static async start(o: GenerationOptions): Promise<Generations> {
    const holderDir = join(o.dir, "holder");
    rmSync(holderDir, { recursive: true, force: true });
    mkdirSync(holderDir, { recursive: true });
    const argv = [...o.nodeFlags, o.entry, "--cert", o.certFile, "--key", o.keyFile];
    const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
    // As the lab's systemctl writes it: the log, LISTEN_PID = this shell's pid, kept by exec.
    writeFileSync(
      join(holderDir, "start"),
      [
        `exec >>${quote(join(o.dir, "generations.log"))} 2>&1 </dev/null`,
        "export LISTEN_PID=$$",
        `exec ${[process.execPath, ...argv, "--app", o.appId, "--ready-file", join(o.dir, "ready")].map(quote).join(" ")}`,
        "",
      ].join("\n"),
    );
    const holder = o.ps.spawn(
      "socket-holder",
      process.execPath,
      [HOLDER, holderDir, `tls=${HOST}:${o.port}`],
      { cpus: o.cpus, logDir: o.dir },
    );
    const g = new Generations(o, holder, holderDir);
    await g.#until("the socket holder", 10_000, () => readPid(join(holderDir, "holder.pid")));
    g.current = await g.#startNext();
    return g;
  }

  /** The hand-over the unit's restart does: SIGTERM the old main, wait for it, start the next. */
  async restart(): Promise<HandoverTimes> {
    const old = this.current;
    const startMs = performance.now();
    await this.#stopMain(old);
    const oldMainExitMs = performance.now() - startMs;
    this.current = await this.#startNext();
    return { order: "restart", startMs, oldMainExitMs, newReadyMs: performance.now() - startMs };
  }

  /** The next generation first; the old main is SIGTERMed once the next one serves. */
  async startFirst(): Promise<HandoverTimes> {
    const old = this.current;
    const startMs = performance.now();
    this.current = await this.#startNext();
    const newReadyMs = performance.now() - startMs;
    await this.#stopMain(old);
    return {
      order: "start-first",
      startMs,
      oldMainExitMs: performance.now() - startMs,
      newReadyMs,
    };
  }

  /** The processes of generation `pgid` now: its primary while it lives, and its workers. */
  members(pgid: number): number[] {
    return groupMembers(pgid).map((s) => s.pid);
  }

  /**
   * CPU ticks and RSS of `pids` (from `members`: reading a few known pids is cheap enough to
   * poll, scanning /proc is not).
   */
  sample(pids: readonly number[]): GroupSample {
    const procs = new Map<number, { ticks: number; rssBytes: number }>();
    for (const pid of pids) {
      const ticks = cpuTicks(pid);
      if (ticks !== undefined) procs.set(pid, { ticks, rssBytes: rssBytes(pid) });
    }
    return { atMs: performance.now(), procs };
  }

  /** Resolves with when the last of `pids` was seen gone, or undefined after `timeoutMs`. */
  async exited(pids: readonly number[], timeoutMs: number): Promise<number | undefined> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (!pids.some(running)) return performance.now();
      await sleep(EXIT_POLL_MS);
    }
    return undefined;
  }

  /**
   * Stops every generation and the holder (from a `finally`, also on failure): the serving one
   * with SIGTERM first, so that its primary removes its workers' config folder and they exit
   * with nothing left to drain, then SIGKILL to whatever is left.
   */
  async killAll(): Promise<void> {
    if (this.current > 0 && running(this.current)) {
      const pids = this.members(this.current);
      process.kill(this.current, "SIGTERM");
      await this.exited(pids, 3000);
    }
    this.killAllNow();
    await this.#o.ps.stop(this.#holder, 2000);
  }

  /** Synchronous, for exit and signal handlers. */
  killAllNow(): void {
    for (const pgid of this.started) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        // ESRCH: gone already
      }
    }
    // Signalled once: a later call must not hit a group that reused one of these numbers.
    this.started.length = 0;
  }

  /** The holder starts `start` (SIGUSR1); resolves with the new main's pid once it serves. */
  async #startNext(): Promise<number> {
    const ready = join(this.#o.dir, "ready");
    const mainPid = join(this.#holderDir, "main.pid");
    rmSync(ready, { force: true });
    rmSync(mainPid, { force: true });
    process.kill(this.#holder.pid, "SIGUSR1");
    const pid = await this.#until("the holder to start a generation", 5000, () => readPid(mainPid));
    this.started.push(pid);
    // As host/restart.ts: the ready file names the new main pid.
    await this.#until(`generation ${pid} to serve`, READY_TIMEOUT_MS, () =>
      readPid(ready) === pid ? pid : undefined,
    );
    return pid;
  }

  async #stopMain(pid: number): Promise<void> {
    process.kill(pid, "SIGTERM");
    const deadline = performance.now() + STOP_TIMEOUT_MS;
    while (running(pid) && performance.now() < deadline) await sleep(EXIT_POLL_MS);
    if (running(pid)) {
      process.kill(pid, "SIGKILL");
      throw new Error(
        `generation ${pid}: the main process ignored SIGTERM for ${STOP_TIMEOUT_MS} ms`,
      );
    }
  }

  async #until<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const value = probe();
      if (value !== undefined) return value;
      await sleep(5);
    }
    throw new Error(
      `waited ${timeoutMs} ms for ${what}; see ${join(this.#o.dir, "generations.log")}`,
    );
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** utime + stime of a running process, in clock ticks; undefined once it has exited. */
function cpuTicks(pid: number): number | undefined {
  const s = readStat(String(pid));
  return s === undefined || s.state === "Z" ? undefined : s.ticks;
}

/** Running: a zombie (exited, not yet reaped by its parent, or by no one here) is not. */
const running = (pid: number): boolean => cpuTicks(pid) !== undefined;
