/**
 * Proxy workers (`core.proxy.workers` > 1): the primary forks that many `gateway
 * proxy-worker` processes of its own bundle; they share the listening sockets (the kernel
 * hands each accepted connection to one of them: cluster SCHED_NONE, no per-connection hop
 * through the primary). The primary keeps everything else (certificates, registration,
 * WireGuard, the state) and feeds the workers:
 * - the instance directory, whole, after every change (coalesced per event-loop turn);
 * - the session ticket keys, which it alone rotates, so a ticket from one worker resumes on
 *   any other;
 * - "reload the certificate" when it changes.
 * It also gathers the workers' counters for the admin API (`snapshot()`).
 * A worker that dies is started again after a second, doubling up to a minute while
 * replacements keep dying young.
 * Stopping: when the listening sockets were handed over (systemd socket units, see
 * listen/activation.ts) they outlive this process, so `stop()` is the old half of a hand-over:
 * it only lets go of the workers, which serve on until the next generation is ready and then
 * drain on their own (worker.ts). Otherwise it asks them to drain and waits.
 */
import cluster, { type Worker } from "node:cluster";
import { forWorker, type ListenFds, WORKER_LISTEN_VAR } from "../listen/index.js";
import type { Logger } from "../log/index.js";
import {
  type DrainingFlag,
  mergeSnapshots,
  type ProxySnapshot,
  TicketKeyRing,
} from "../proxy/index.js";
import type { MemoryDirectory } from "../registry/index.js";
import { isMessage, type ToPrimary, type ToWorker } from "./messages.js";
import { loadTicketKeys, saveTicketKeys } from "./ticket-file.js";

export interface ProxyWorkersOptions {
  readonly count: number;
  /** The config file the workers load (the one the primary runs with). */
  readonly configFile: string;
  readonly directory: MemoryDirectory;
  /** Forwarded to every worker, whose health name answers 503 while it is set. */
  readonly draining?: DrainingFlag;
  readonly log: Logger;
  /** Ticket key rotation period (the terminator's default: 12 h). */
  readonly ticketRotationMs?: number;
  /** Where the ticket keys are kept across generations (ticket-file.ts); none: memory only. */
  readonly ticketKeyFile?: string | undefined;
  /**
   * The ready file the next generation writes its pid to: workers whose primary went serve on
   * until it does (next-generation.ts). @default none: they drain at once
   */
  readonly readyFile?: string | undefined;
  /** Listening sockets handed over to this process; the workers serve on these. */
  readonly listenFds?: ListenFds | undefined;
  /** `core.proxy.drain_timeout`: how long `stop()` waits for workers' connections to end. */
  readonly drainTimeoutMs?: number;
  /** The bundle to run; default: this process's own script. */
  readonly exec?: string;
  /** Node flags of the workers; default: this process's own (the unit's `NODE_FLAGS`). */
  readonly execArgv?: readonly string[];
  /** How long start-up waits for every worker's "ready". @default 30000 */
  readonly readyTimeoutMs?: number;
  /** Restart back-off: first delay, cap, and the uptime that counts as recovered (tests). */
  readonly restart?: {
    readonly delayMs: number;
    readonly capMs: number;
    readonly stableMs: number;
  };
}

/** A replacement starts after this; each quick death in a row doubles it, up to the cap. */
const RESTART_DELAY_MS = 1000;
const RESTART_DELAY_CAP_MS = 60_000;
/** A worker that served this long resets the doubling. */
const STABLE_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const DEFAULT_ROTATION_MS = 12 * 3600 * 1000;

/** The workers' counters summed, and how many of the running workers answered in time. */
export interface WorkersSnapshot {
  readonly snapshot: ProxySnapshot;
  readonly workers: number;
  readonly answered: number;
}

interface StatsRequest {
  readonly waiting: Set<Worker>;
  readonly answers: ProxySnapshot[];
  readonly done: () => void;
}

export class ProxyWorkers {
  readonly #opts: ProxyWorkersOptions;
  readonly #keys = new TicketKeyRing();
  readonly #workers = new Set<Worker>();
  #rotation: NodeJS.Timeout | undefined;
  readonly #unsubscribe: () => void;
  #pending = false;
  #stopping = false;
  /** Workers that died soon after starting, in a row (drives the restart back-off). */
  #quickDeaths = 0;
  /** When the latest replacements were started (the last 32), for tests and diagnostics. */
  readonly restarts: number[] = [];
  readonly #statsRequests = new Map<number, StatsRequest>();
  #nextStatsId = 1;
  /** What each fork adds to the environment: where its handed-over sockets are. */
  #forkEnv: Record<string, string> = {};

  private constructor(opts: ProxyWorkersOptions) {
    this.#opts = opts;
    const offDirectory = opts.directory.onChange(() => this.#directoryChanged());
    const offDraining = opts.draining?.onChange((draining) =>
      this.#broadcast({ type: "draining", draining }),
    );
    this.#unsubscribe = () => {
      offDirectory();
      offDraining?.();
    };
  }

  /** Forks the workers and resolves once each one listens; rejects (and stops them) otherwise. */
  static async start(opts: ProxyWorkersOptions): Promise<ProxyWorkers> {
    const workers = new ProxyWorkers(opts);
    await workers.#startRotation();
    const handed = forWorker(opts.listenFds ?? {});
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({
      exec: opts.exec ?? (process.argv[1] as string),
      execArgv: [...(opts.execArgv ?? process.execArgv)],
      args: [
        "proxy-worker",
        ...["--config", opts.configFile],
        ...(opts.readyFile === undefined ? [] : ["--ready-file", opts.readyFile]),
      ],
      // The handed-over sockets go to each worker as its fds 3, 4 (forWorker), IPC after them.
      ...(handed.order.length > 0
        ? { stdio: ["inherit", "inherit", "inherit", ...handed.order, "ipc"] }
        : {}),
    });
    workers.#forkEnv = handed.order.length > 0 ? { [WORKER_LISTEN_VAR]: handed.env } : {};
    try {
      await Promise.all(Array.from({ length: opts.count }, () => workers.#fork()));
    } catch (error) {
      await workers.stop();
      throw error;
    }
    opts.log.info({ workers: opts.count }, "proxy workers serving");
    return workers;
  }

  /** The workers' process ids (for logs and tests). */
  pids(): number[] {
    return [...this.#workers].map((w) => w.process.pid ?? 0);
  }

  /**
   * Asks every running worker for its counters and sums the answers that arrive within
   * `timeoutMs`; a worker that dies or is slow is left out and counted as not answered.
   */
  snapshot(timeoutMs = 1000): Promise<WorkersSnapshot> {
    const id = this.#nextStatsId++;
    const workers = [...this.#workers].filter((w) => w.isConnected());
    return new Promise((resolve) => {
      const request: StatsRequest = {
        waiting: new Set(workers),
        answers: [],
        done: () => {
          clearTimeout(timer);
          this.#statsRequests.delete(id);
          const { answers } = request;
          resolve({
            snapshot: mergeSnapshots(answers),
            workers: workers.length,
            answered: answers.length,
          });
        },
      };
      const timer = setTimeout(request.done, timeoutMs);
      this.#statsRequests.set(id, request);
      if (workers.length === 0) request.done();
      for (const worker of workers) this.#send(worker, { type: "stats", id });
    });
  }

  /** Every worker re-reads the certificate files. */
  reloadCertificate(): void {
    this.#broadcast({ type: "reload-certificate" });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#rotation);
    this.#unsubscribe();
    if (this.#opts.listenFds?.tls !== undefined) {
      // Hand-over: closing the channel is the workers' cue to serve on until the next
      // generation is ready, then drain; nothing to wait for here.
      // Unref'd too: this process must exit now, not when the last worker has drained.
      for (const worker of this.#workers) {
        if (worker.isConnected()) worker.process.disconnect();
        worker.process.unref();
      }
      this.#opts.log.info({ workers: this.#workers.size }, "proxy workers left to drain");
      return;
    }
    const graceMs = (this.#opts.drainTimeoutMs ?? 0) + STOP_TIMEOUT_MS;
    await Promise.all([...this.#workers].map((w) => stopWorker(w, graceMs)));
  }

  /** Keys from the file when it has good ones, then a rotation every period, saved each time. */
  async #startRotation(): Promise<void> {
    const { ticketKeyFile: file, log } = this.#opts;
    const periodMs = this.#opts.ticketRotationMs ?? DEFAULT_ROTATION_MS;
    const save = (at: number) =>
      file === undefined
        ? Promise.resolve()
        : saveTicketKeys(file, this.#keys, at).catch((error: unknown) =>
            log.warn({ err: error, file }, "could not save the session ticket keys"),
          );
    let madeAt = Date.now();
    if (file !== undefined) {
      madeAt = await loadTicketKeys(file, this.#keys, periodMs);
      await save(madeAt);
    }
    const schedule = (delayMs: number) => {
      this.#rotation = setTimeout(() => {
        this.#keys.rotate();
        this.#broadcast({ type: "ticket-keys", keys: this.#keys.export() });
        void save(Date.now());
        schedule(periodMs);
      }, delayMs).unref();
    };
    schedule(Math.max(0, madeAt + periodMs - Date.now()));
  }

  #fork(): Promise<void> {
    const { log, readyTimeoutMs = 30_000 } = this.#opts;
    const worker = cluster.fork(this.#forkEnv);
    const forkedAt = Date.now();
    this.#workers.add(worker);
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        reject(
          new Error(`proxy worker ${worker.process.pid} not ready after ${readyTimeoutMs} ms`),
        );
        worker.process.kill("SIGKILL"); // a stuck worker would hold a slot and serve nothing
      }, readyTimeoutMs);
      worker.on("message", (message: unknown) => {
        if (!isMessage<ToPrimary>(message)) return;
        if (message.type === "hello") {
          this.#send(worker, { type: "ticket-keys", keys: this.#keys.export() });
          this.#send(worker, { type: "directory", instances: this.#opts.directory.all() });
          if (this.#opts.draining?.value) this.#send(worker, { type: "draining", draining: true });
          return;
        }
        if (message.type === "stats") {
          this.#answered(worker, message.id, message.snapshot);
          return;
        }
        ready = true;
        clearTimeout(timer);
        resolve();
      });
      worker.on("exit", (code, signal) => {
        this.#workers.delete(worker);
        for (const [id] of this.#statsRequests) this.#answered(worker, id, undefined);
        clearTimeout(timer);
        if (!ready) reject(new Error(`proxy worker exited during start-up (${signal ?? code})`));
        if (this.#stopping) return;
        const restart = this.#opts.restart ?? {
          delayMs: RESTART_DELAY_MS,
          capMs: RESTART_DELAY_CAP_MS,
          stableMs: STABLE_MS,
        };
        this.#quickDeaths = Date.now() - forkedAt >= restart.stableMs ? 0 : this.#quickDeaths + 1;
        const delayMs = Math.min(
          restart.capMs,
          restart.delayMs * 2 ** Math.max(0, this.#quickDeaths - 1),
        );
        log.error(
          { pid: worker.process.pid, code, signal, restartInMs: delayMs },
          "proxy worker died; starting another",
        );
        setTimeout(() => {
          if (this.#stopping) return;
          this.restarts.push(Date.now());
          if (this.restarts.length > 32) this.restarts.shift();
          this.#fork().catch((error: unknown) =>
            log.error({ err: error }, "a replacement proxy worker failed to start"),
          );
        }, delayMs).unref();
      });
    });
  }

  /** Records a worker's answer to a stats request (none when it died first). */
  #answered(worker: Worker, id: number, snapshot: ProxySnapshot | undefined): void {
    const request = this.#statsRequests.get(id);
    if (!request?.waiting.delete(worker)) return;
    if (snapshot) request.answers.push(snapshot);
    if (request.waiting.size === 0) request.done();
  }

  #directoryChanged(): void {
    if (this.#pending) return;
    this.#pending = true;
    setImmediate(() => {
      this.#pending = false;
      this.#broadcast({ type: "directory", instances: this.#opts.directory.all() });
    });
  }

  #broadcast(message: ToWorker): void {
    for (const worker of this.#workers) this.#send(worker, message);
  }

  #send(worker: Worker, message: ToWorker): void {
    if (!worker.isConnected()) return;
    worker.send(message, (error: Error | null) => {
      if (error && !this.#stopping) {
        this.#opts.log.warn(
          { err: error, pid: worker.process.pid },
          "could not reach a proxy worker",
        );
      }
    });
  }
}

/** SIGTERM (the worker drains), then SIGKILL if it has not exited within `graceMs`. */
function stopWorker(worker: Worker, graceMs: number): Promise<void> {
  if (worker.isDead()) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => worker.process.kill("SIGKILL"), graceMs);
    worker.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    worker.process.kill("SIGTERM");
  });
}
