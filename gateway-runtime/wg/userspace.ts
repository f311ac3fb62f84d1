/**
 * A `wireguard-go` process the gateway starts and then lets outlive it, as a kernel interface
 * does: a hand-over, a restart or the gateway killed must not end the tunnels (and their
 * sessions) of every CVM. The next generation finds the interface and adopts it (the manager
 * starts wireguard-go only when the interface is missing), and deleting the interface ends it.
 * It runs in the foreground (`-f`, so we see it exit while we are there) in a session of its
 * own, writing to our stdout and stderr (the journal under systemd): a pipe of ours would break
 * when we exit, and Go dies of SIGPIPE on its next log line. Under systemd it stays in the
 * unit's cgroup, which `KillMode=process` leaves alone on a restart.
 */
import type { ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import type { CommandRunner } from "./exec.js";

export interface WireguardGoOptions {
  readonly runner: CommandRunner;
  /** The wireguard-go binary. @default "wireguard-go" */
  readonly binary: string;
  readonly iface: string;
  readonly log: Logger;
  /** Bound on the wait for the interface and its control socket. */
  readonly readyTimeoutMs: number;
  readonly commandTimeoutMs: number;
}

const POLL_MS = 25;

/** Resolves true when `promise` settles within `ms`, false otherwise; leaves no timer behind. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const abort = new AbortController();
  const timedOut = sleep(ms, false, { signal: abort.signal }).catch(() => false);
  try {
    return await Promise.race([promise.then(() => true), timedOut]);
  } finally {
    abort.abort();
  }
}

export class WireguardGoProcess {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #log: Logger;
  #done = false;
  #stopping = false;

  private constructor(child: ChildProcess, log: Logger) {
    this.#child = child;
    this.#log = log;
    this.#exited = new Promise((resolve) => {
      child.once("error", (err) => {
        log.error({ err }, "could not start wireguard-go");
        this.#done = true;
        resolve();
      });
      child.once("exit", (code, signal) => {
        this.#done = true;
        if (!this.#stopping) log.error({ code, signal }, "wireguard-go exited unexpectedly");
        resolve();
      });
    });
  }

  /** Starts wireguard-go for `iface` and resolves once `wg` can configure it. */
  static async start(opts: WireguardGoOptions): Promise<WireguardGoProcess> {
    const child = opts.runner.spawn(opts.binary, ["-f", opts.iface]);
    const proc = new WireguardGoProcess(child, opts.log);
    try {
      await proc.#waitReady(opts);
    } catch (err) {
      await proc.stop();
      throw err;
    }
    opts.log.info({ interface: opts.iface, pid: child.pid }, "wireguard-go started");
    return proc;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return !this.#done;
  }

  /** Resolves when the process has ended (by itself or by `stop`). */
  get exited(): Promise<void> {
    return this.#exited;
  }

  async #waitReady(opts: WireguardGoOptions): Promise<void> {
    const deadline = performance.now() + opts.readyTimeoutMs;
    for (;;) {
      if (this.#done) {
        const { exitCode, signalCode } = this.#child;
        throw new GatewayError(
          "E_WG_INTERFACE",
          `wireguard-go for ${opts.iface} ended before it was ready (exit ${exitCode ?? signalCode ?? "?"}; its output is in the gateway's log)`,
        );
      }
      try {
        await opts.runner.run("wg", ["show", opts.iface, "listen-port"], opts.commandTimeoutMs);
        return;
      } catch {
        // Not ready yet: the link appears before the control socket listens.
      }
      if (performance.now() >= deadline) {
        throw new GatewayError(
          "E_WG_INTERFACE",
          `wireguard-go for ${opts.iface} was not ready within ${opts.readyTimeoutMs} ms`,
        );
      }
      await within(this.#exited, POLL_MS);
    }
  }

  /** Stops watching it and lets it run on: the interface outlives this process. */
  release(): void {
    this.#stopping = true;
    this.#child.unref();
  }

  /** SIGTERM (wireguard-go removes its interface and socket), then SIGKILL; bounded. */
  async stop(graceMs = 5_000): Promise<void> {
    this.#stopping = true;
    if (this.#done) return;
    this.#child.kill("SIGTERM");
    if (await within(this.#exited, graceMs)) return;
    this.#log.warn({ pid: this.#child.pid }, "wireguard-go ignored SIGTERM; killing it");
    this.#child.kill("SIGKILL");
    if (!(await within(this.#exited, 2_000))) {
      throw new GatewayError(
        "E_WG_INTERFACE",
        `wireguard-go (pid ${this.#child.pid}) did not exit`,
      );
    }
  }
}
