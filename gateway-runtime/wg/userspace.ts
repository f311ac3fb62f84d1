/**
 * A `wireguard-go` process the gateway owns. It runs in the foreground (`-f`) as our child, so
 * we hold its pid, read its output and stop it; it is started under `setpriv --pdeathsig TERM`,
 * so it also ends when the gateway dies without a chance to stop it (SIGKILL, crash): no orphan
 * outlives the process that could track it. The daemonizing default would detach it and leave
 * nobody holding its pid. Under systemd the unit's cgroup covers it as well.
 */
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
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

const KEPT_OUTPUT_LINES = 20;
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
  readonly #output: string[] = [];
  readonly #log: Logger;
  #done = false;
  #stopping = false;

  private constructor(child: ChildProcess, log: Logger) {
    this.#child = child;
    this.#log = log;
    this.#exited = new Promise((resolve) => {
      child.once("error", (err) => {
        this.#keep(`spawn failed: ${err.message}`);
        this.#done = true;
        resolve();
      });
      child.once("exit", (code, signal) => {
        this.#done = true;
        if (!this.#stopping) log.error({ code, signal }, "wireguard-go exited unexpectedly");
        resolve();
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on("line", (line) => {
        this.#keep(line);
        log.debug({ wireguardGo: line }, "wireguard-go output");
      });
    }
  }

  /** Starts wireguard-go for `iface` and resolves once `wg` can configure it. */
  static async start(opts: WireguardGoOptions): Promise<WireguardGoProcess> {
    const child = opts.runner.spawn("setpriv", [
      "--pdeathsig",
      "TERM",
      opts.binary,
      "-f",
      opts.iface,
    ]);
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

  #keep(line: string): void {
    this.#output.push(line);
    if (this.#output.length > KEPT_OUTPUT_LINES) this.#output.shift();
  }

  async #waitReady(opts: WireguardGoOptions): Promise<void> {
    const deadline = performance.now() + opts.readyTimeoutMs;
    for (;;) {
      if (this.#done) {
        const { exitCode, signalCode } = this.#child;
        throw new GatewayError(
          "E_WG_INTERFACE",
          `wireguard-go for ${opts.iface} ended before it was ready (exit ${exitCode ?? signalCode ?? "?"}): ${this.#output.join(" | ")}`,
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
