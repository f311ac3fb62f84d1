/**
 * HAProxy's process, run by the runtime: started in master-worker mode (`-W`, the master CLI on
 * `master.sock`) as a child the runtime supervises, and adopted by the runtime's next
 * generation instead of started twice.
 *
 * Why a supervised child, adopted across generations, rather than a systemd unit of its own:
 * HAProxy is useless without the runtime (its servers, maps and certificate exist only as the
 * runtime applies them, and its configuration is rendered from the runtime's), so one unit
 * keeps one thing to deploy, start, stop and watch, with the listening sockets the unit's
 * socket units hand over (passed on as `fd@3`/`fd@4`). The gateway unit has
 * `KillMode=process`: a hand-over (deploy, restart) signals only the runtime, so the running
 * HAProxy keeps serving through it, with every connection, while the next generation starts.
 * That generation finds it through the pid file and the master CLI and adopts it: it re-reads
 * what HAProxy holds, applies the difference through the runtime API, and reloads only when
 * the configuration's structure changed. A second HAProxy on the same sockets would split the
 * traffic between two sets of runtime state; a separate unit would need its own ordering,
 * reload and failure handling against the runtime's, for no gain.
 *
 * While the runtime owns HAProxy's process (its child, or an adopted one), it restarts it
 * after a crash, with backoff, from the files on disk (which carry the servers and map
 * entries), and logs its stderr lines; an adopted HAProxy's stderr went to the generation
 * that started it and is not read (its runtime API still is).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { GatewayError } from "../../errors.js";
import type { Logger } from "../../log/index.js";
import { rawCommand } from "./api.js";
import { FILES } from "./layout.js";

export const HAPROXY_BINARY = "/usr/sbin/haproxy";
/** Bound on a start or a reload until the new worker answers. */
const READY_TIMEOUT_MS = 15_000;
const BACKOFF_MS = [500, 1_000, 2_000, 5_000, 10_000, 30_000] as const;
/** A run this long resets the backoff. */
const STABLE_MS = 60_000;
/** How often an adopted master (not our child: no exit event) is looked at. */
const WATCH_MS = 1_000;

export class HaproxyProcessError extends GatewayError<
  "E_HAPROXY_START" | "E_HAPROXY_RELOAD" | "E_HAPROXY_CONFIG"
> {}

export interface HaproxyProcessOptions {
  readonly dir: string;
  readonly log: Logger;
  readonly binary?: string;
  /** This process's descriptors HAProxy gets as fd 3, 4, … (the handed-over listeners). */
  readonly passFds?: readonly number[];
  /** After HAProxy was started again following a crash: the caller re-syncs its state. */
  readonly onRestart?: () => void;
}

/** `show proc` on the master CLI: the master, its current workers and failed reloads. */
export interface ProcList {
  readonly master: number;
  readonly workers: readonly number[];
  readonly failedReloads: number;
}

export function parseShowProc(text: string): ProcList | undefined {
  let master = 0;
  let failedReloads = 0;
  const workers: number[] = [];
  let section = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("# ")) {
      section = line.slice(2).trim();
      continue;
    }
    const m = /^(\d+)\s+(\S+)/.exec(line);
    if (!m) continue;
    if (m[2] === "master") {
      master = Number(m[1]);
      failedReloads = Number(/\[failed: (\d+)\]/.exec(line)?.[1] ?? 0);
    } else if (m[2] === "worker" && section === "workers") workers.push(Number(m[1]));
  }
  return master > 0 ? { master, workers, failedReloads } : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class HaproxyProcess {
  readonly #opts: HaproxyProcessOptions;
  readonly #master: string;
  readonly #config: string;
  #child: ChildProcess | undefined;
  #pid = 0;
  #adopted = false;
  /** No longer supervised (stopped or released). */
  #stopping = false;
  /** `stop` was called: a start still under way must end its HAProxy too. */
  #killed = false;
  #failures = 0;
  #startedAt = 0;
  #watch: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;

  private constructor(opts: HaproxyProcessOptions) {
    this.#opts = opts;
    this.#master = join(opts.dir, FILES.master);
    this.#config = join(opts.dir, FILES.config);
  }

  /** Adopts the HAProxy the pid file names if it runs and answers, else starts one. */
  static async startOrAdopt(opts: HaproxyProcessOptions): Promise<HaproxyProcess> {
    const proc = new HaproxyProcess(opts);
    if (!(await proc.#adopt())) await proc.#start();
    return proc;
  }

  /** The master's pid. */
  get pid(): number {
    return this.#pid;
  }

  /** Found running rather than started by this process. */
  get adopted(): boolean {
    return this.#adopted;
  }

  /** `show proc` on the master CLI. */
  async procs(): Promise<ProcList> {
    const list = parseShowProc(await rawCommand(this.#master, "show proc"));
    if (!list)
      throw new HaproxyProcessError("E_HAPROXY_START", "master CLI: no master in show proc");
    return list;
  }

  /** `haproxy -c`: the file as written parses and loads. */
  check(file = this.#config): Promise<void> {
    return checkHaproxyConfig(this.#opts, file);
  }

  /**
   * A seamless reload (the master starts a worker on the new file; the listeners pass to it
   * through the stats socket's `expose-fd listeners`; the old worker finishes its connections
   * for up to `hard-stop-after`). Resolves when the new worker is the current one.
   */
  async reload(): Promise<void> {
    await this.check();
    const before = await this.procs();
    await rawCommand(this.#master, "reload").catch(() => "");
    const deadline = performance.now() + READY_TIMEOUT_MS;
    while (performance.now() < deadline) {
      await sleep(50);
      const now = await this.procs().catch(() => undefined);
      if (!now) continue;
      if (now.failedReloads > before.failedReloads) {
        throw new HaproxyProcessError("E_HAPROXY_RELOAD", "haproxy reload failed (see its log)");
      }
      if (now.workers.length > 0 && now.workers.every((w) => !before.workers.includes(w))) {
        this.#opts.log.info({ workers: now.workers }, "haproxy reloaded");
        return;
      }
    }
    throw new HaproxyProcessError(
      "E_HAPROXY_RELOAD",
      `haproxy reload: no new worker in ${READY_TIMEOUT_MS} ms`,
    );
  }

  /** Stops HAProxy now (its connections end), and stops supervising it. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#killed = true;
    clearInterval(this.#watch);
    clearTimeout(this.#restartTimer);
    const pid = this.#pid;
    if (pid === 0 || !alive(pid)) return;
    process.kill(pid, "SIGTERM");
    const deadline = performance.now() + 5_000;
    while (alive(pid) && performance.now() < deadline) await sleep(20);
    if (alive(pid)) process.kill(pid, "SIGKILL");
  }

  /** Leaves HAProxy running for the next generation (a hand-over), unsupervised. */
  release(): void {
    this.#stopping = true;
    clearInterval(this.#watch);
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (!child) return;
    child.stdout?.destroy();
    child.stderr?.destroy();
    child.unref();
  }

  async #adopt(): Promise<boolean> {
    let pid: number;
    try {
      pid = Number(readFileSync(join(this.#opts.dir, FILES.pid), "utf8").trim());
    } catch {
      return false;
    }
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return false;
    const procs = await this.procs().catch(() => undefined);
    if (!procs || procs.master !== pid || procs.workers.length === 0) return false;
    this.#pid = pid;
    this.#adopted = true;
    this.#opts.log.info({ pid }, "haproxy: adopted the running master");
    this.#watch = setInterval(() => {
      if (!this.#stopping && !alive(pid)) {
        clearInterval(this.#watch);
        this.#opts.log.error({ pid }, "haproxy: the adopted master is gone; starting one");
        this.#restartLater();
      }
    }, WATCH_MS);
    this.#watch.unref();
    return true;
  }

  async #start(): Promise<void> {
    await this.check();
    const passFds = this.#opts.passFds ?? [];
    const child = spawn(
      this.#opts.binary ?? HAPROXY_BINARY,
      ["-W", "-S", `${this.#master},mode,600`, "-f", this.#config],
      // Its own process group: a terminal's Ctrl-C to the runtime is not HAProxy's. In the
      // engine's directory: HAProxy changes back to where it started after parsing, which the
      // gateway's user may not enter (the service manager's own directory).
      { cwd: this.#opts.dir, detached: true, stdio: ["ignore", "pipe", "pipe", ...passFds] },
    );
    this.#child = child;
    this.#adopted = false;
    this.#startedAt = performance.now();
    const tail: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on("line", (line) => {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        const level = /\[(ALERT|EMERG)\]/.test(line)
          ? "error"
          : /\[WARNING\]/.test(line)
            ? "warn"
            : "info";
        this.#opts.log[level]({ haproxy: line }, "haproxy");
      });
    }
    let exited = false;
    child.once("exit", (code, signal) => {
      exited = true;
      if (this.#stopping || this.#child !== child) return;
      this.#opts.log.error({ code, signal }, "haproxy exited");
      this.#restartLater();
    });
    const deadline = performance.now() + READY_TIMEOUT_MS;
    for (;;) {
      const procs = await this.procs().catch(() => undefined);
      if (procs && procs.workers.length > 0) {
        this.#pid = procs.master;
        // Stopped while this (re)start was under way: it must not outlive the engine.
        if (this.#killed) await this.stop();
        return;
      }
      if (exited || performance.now() > deadline) {
        if (!exited) child.kill("SIGKILL");
        throw new HaproxyProcessError(
          "E_HAPROXY_START",
          `haproxy did not start:\n${tail.join("\n")}`,
        );
      }
      await sleep(50);
    }
  }

  #restartLater(): void {
    if (performance.now() - this.#startedAt > STABLE_MS) this.#failures = 0;
    const delay = BACKOFF_MS[Math.min(this.#failures, BACKOFF_MS.length - 1)] as number;
    this.#failures++;
    this.#restartTimer = setTimeout(() => {
      if (this.#stopping) return;
      this.#start().then(
        () => {
          this.#opts.log.info({ pid: this.#pid }, "haproxy started again");
          this.#opts.onRestart?.();
        },
        (error: unknown) => {
          this.#opts.log.error({ err: error }, "haproxy: start failed");
          if (!this.#stopping) this.#restartLater();
        },
      );
    }, delay);
    this.#restartTimer.unref();
  }
}

/**
 * `haproxy -c -f file`, run as the engine runs HAProxy: from its directory, with the listeners
 * it would get (`bind fd@3` is checked against the descriptor). Throws `E_HAPROXY_CONFIG` with
 * HAProxy's own messages.
 */
export function checkHaproxyConfig(
  opts: Pick<HaproxyProcessOptions, "binary" | "dir" | "passFds">,
  file: string,
): Promise<void> {
  // Not spawnSync: a check of a large configuration takes a while, and the runtime's event loop
  // (registrations, the slow path's connections, health) must not stop for it.
  return new Promise((resolve, reject) => {
    const child = spawn(opts.binary ?? HAPROXY_BINARY, ["-c", "-f", file], {
      cwd: opts.dir,
      stdio: ["ignore", "pipe", "pipe", ...(opts.passFds ?? [])],
      timeout: 15_000,
    });
    let output = "";
    const collect = (d: Buffer) => {
      output += d.toString();
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    const fail = (why: string) =>
      reject(new HaproxyProcessError("E_HAPROXY_CONFIG", `haproxy -c ${file} (${why}): ${output}`));
    child.once("error", (error) => fail(error.message));
    child.once("close", (code, signal) => (code === 0 ? resolve() : fail(String(code ?? signal))));
  });
}

/**
 * Soft-stops the HAProxy a previous generation left running in `dir` for adoption, when this
 * generation runs the Node engine: nobody would adopt it, and on handed-over sockets it would
 * go on accepting beside the Node data plane with routes no one updates. SIGUSR1 makes HAProxy
 * close its listeners and exit once its open connections end. Resolves with the master's pid,
 * or undefined when none runs there (its pid file gone, stale, or naming another program).
 */
export async function retireHaproxy(dir: string, log: Logger): Promise<number | undefined> {
  let pid: number;
  let cmdline: string;
  try {
    pid = Number(readFileSync(join(dir, FILES.pid), "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return undefined;
  }
  // A pid file outlives its process, and the pid may be another program's by now.
  const args = cmdline.split("\0");
  if (!args[0]?.endsWith("haproxy") || !args.includes(join(dir, FILES.config))) return undefined;
  process.kill(pid, "SIGUSR1");
  log.info(
    { pid },
    "haproxy: the HAProxy of an earlier generation closes its listeners and exits once its connections end (core.proxy.engine is node)",
  );
  return pid;
}
