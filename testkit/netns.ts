/**
 * Network namespaces as test hosts. Every namespace is named `gwt<pid>-<hex>-<name>`, so a run
 * only ever touches what it made, and `cleanupStale` can tell leftovers of dead runs from those
 * of live ones. Every command is bounded; `teardown()` removes all it made even after a partial
 * failure (it kills every process still inside a namespace, then deletes the namespace, whose
 * veth ends go with it). Needs root and iproute2.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive } from "./process.js";

export const NETNS_PREFIX = "gwt";
const COMMAND_TIMEOUT_MS = 5_000;
const STOP_GRACE_MS = 10_000;
const KEPT_OUTPUT_CHARS = 16_384;

export interface VethEnd {
  /** A namespace made by this harness (its full name). */
  readonly ns: string;
  readonly dev: string;
  /** CIDR to add, e.g. `192.0.2.1/30`. */
  readonly address?: string;
}

export interface NsProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** The last 16 KiB of stdout and stderr. */
  output(): string;
  /** Resolves when the process has ended. */
  readonly exited: Promise<void>;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
  stop(): Promise<void>;
}

/** Runs a command on the host with a timeout; the error message carries its stderr. */
export function run(
  file: string,
  args: readonly string[],
  timeoutMs = COMMAND_TIMEOUT_MS,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      { timeout: timeoutMs, killSignal: "SIGKILL" },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${[file, ...args].join(" ")}: ${stderr.trim() || err.message}`));
        else resolve({ stdout, stderr });
      },
    );
  });
}

async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() >= deadline) return false;
    await sleep(20);
  }
}

/** Names of all network namespaces starting with `prefix`. */
export async function listNamespaces(prefix: string): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name !== "" && name.startsWith(prefix));
}

async function namespacePids(ns: string): Promise<number[]> {
  const { stdout } = await run("ip", ["netns", "pids", ns]);
  return stdout.split(/\s+/).filter(Boolean).map(Number);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** Kills every process inside `ns` (SIGTERM, then SIGKILL) and deletes it. */
async function removeNamespace(ns: string): Promise<void> {
  if (!(await listNamespaces(ns)).includes(ns)) return;
  const pids = await namespacePids(ns);
  for (const pid of pids) signal(pid, "SIGTERM");
  const empty = async () => (await namespacePids(ns)).length === 0;
  if (!(await waitFor(empty, STOP_GRACE_MS))) {
    for (const pid of await namespacePids(ns)) signal(pid, "SIGKILL");
    if (!(await waitFor(empty, 2_000))) throw new Error(`processes in ${ns} did not exit`);
  }
  await run("ip", ["netns", "del", ns]);
}

/**
 * Removes namespaces `<prefix><pid>-...` whose pid is no longer running (crashed runs), with
 * every process still inside them. Namespaces of live runs are left alone. Returns the names.
 */
export async function cleanupStale(prefix = NETNS_PREFIX): Promise<string[]> {
  const pattern = new RegExp(`^${prefix}(\\d+)-`);
  const stale = (await listNamespaces(prefix)).filter((ns) => {
    const pid = pattern.exec(ns)?.[1];
    return pid !== undefined && !isAlive(Number(pid));
  });
  for (const ns of stale) await removeNamespace(ns);
  return stale;
}

/** Live (not zombie) processes whose command line contains `needle`. */
export function processesMatching(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ");
      const state = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.[0];
      if (cmdline.includes(needle) && state !== "Z") found.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

export class NetnsHarness {
  /** `gwt<pid>-<hex>-`: every namespace this harness makes starts with it. */
  readonly prefix: string;
  readonly #token: string;
  readonly #namespaces: string[] = [];
  readonly #processes = new Set<NsProcess>();

  constructor() {
    this.#token = randomBytes(2).toString("hex");
    this.prefix = `${NETNS_PREFIX}${process.pid}-${this.#token}-`;
  }

  /**
   * A link name unique to this run and at most 15 characters (`tag` up to 5): for interfaces
   * whose names are global even across namespaces, like wireguard-go's control sockets.
   */
  linkName(tag: string): string {
    if (!/^[a-z0-9]{1,5}$/.test(tag)) throw new Error(`bad link tag ${tag}`);
    return `w${process.pid.toString(36)}${this.#token}${tag}`;
  }

  /** Creates namespace `<prefix><name>` with loopback up; returns its full name. */
  async add(name: string): Promise<string> {
    if (!/^[a-z0-9-]{1,20}$/.test(name)) throw new Error(`bad namespace name ${name}`);
    const ns = `${this.prefix}${name}`;
    // Recorded first, so teardown removes it even if creation fails halfway.
    this.#namespaces.push(ns);
    await run("ip", ["netns", "add", ns]);
    await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    return ns;
  }

  /** A veth pair between two of our namespaces, addressed and up. */
  async veth(a: VethEnd, b: VethEnd): Promise<void> {
    this.#own(a.ns);
    this.#own(b.ns);
    await run(
      "ip",
      ["link", "add", "name", a.dev, "netns", a.ns, "type", "veth"].concat([
        "peer",
        "name",
        b.dev,
        "netns",
        b.ns,
      ]),
    );
    for (const end of [a, b]) {
      if (end.address)
        await run("ip", ["-n", end.ns, "address", "add", end.address, "dev", end.dev]);
      await run("ip", ["-n", end.ns, "link", "set", end.dev, "up"]);
    }
  }

  /** Runs `file args` inside `ns` to completion, bounded by `timeoutMs`. */
  exec(ns: string, file: string, args: readonly string[], timeoutMs = COMMAND_TIMEOUT_MS) {
    this.#own(ns);
    return run("ip", ["netns", "exec", ns, file, ...args], timeoutMs);
  }

  /**
   * Starts a long-running process inside `ns`. It gets SIGTERM if the test process dies
   * (`setpriv --pdeathsig`), and `stop()` / `teardown()` end it otherwise.
   */
  spawn(ns: string, file: string, args: readonly string[]): NsProcess {
    this.#own(ns);
    const child = spawn(
      "ip",
      ["netns", "exec", ns, "setpriv", "--pdeathsig", "TERM", file, ...args],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString("utf8")).slice(-KEPT_OUTPUT_CHARS);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const exited = new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", (err) => {
        keep(Buffer.from(`spawn failed: ${err.message}\n`));
        resolve();
      });
    });
    const ended = () => child.exitCode !== null || child.signalCode !== null;
    const handle: NsProcess = {
      pid: child.pid ?? -1,
      child,
      output: () => output,
      exited,
      stop: async () => {
        this.#processes.delete(handle);
        if (ended()) return;
        child.kill("SIGTERM");
        if (await waitFor(ended, STOP_GRACE_MS)) return;
        child.kill("SIGKILL");
        if (!(await waitFor(ended, 2_000))) throw new Error(`pid ${child.pid} did not exit`);
      },
    };
    this.#processes.add(handle);
    return handle;
  }

  /** Stops every process and removes every namespace this harness made; safe to call twice. */
  async teardown(): Promise<void> {
    const errors: unknown[] = [];
    for (const proc of [...this.#processes]) await proc.stop().catch((err) => errors.push(err));
    for (const ns of this.#namespaces.splice(0).reverse()) {
      await removeNamespace(ns).catch((err) => {
        errors.push(err);
        this.#namespaces.push(ns); // a later teardown tries again
      });
    }
    if (errors.length > 0) throw new AggregateError(errors, "netns teardown failed");
  }

  #own(ns: string): void {
    if (!this.#namespaces.includes(ns)) throw new Error(`${ns} was not made by this harness`);
  }
}
