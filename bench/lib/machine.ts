/** What the bench needs from the machine, and what it reports about it. */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";

const TOOLS = ["taskset", "haproxy", "nginx", "h2load", "wrk", "gcc", "openssl"] as const;
const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";
/**
 * Descriptors a run needs besides (g)'s connections: listeners, logs, pipes, the load
 * scenarios' few hundred connections.
 */
const FD_MARGIN = 2_000;
/** A proxy holds 2 descriptors per idle terminated connection (client, backend). */
const FDS_PER_IDLE = 2;
/**
 * The HAProxy engine holds 4 descriptors per terminated connection (client, the Unix socket's
 * two ends to its terminating frontend, backend), all in HAProxy's one worker.
 */
const HAPROXY_ENGINE_FDS_PER_IDLE = 4;
/** The open-file limit a run without (g) needs, and (g)'s default 5,000 without ours-haproxy. */
export const MIN_FD_LIMIT = 5_000 * FDS_PER_IDLE + FD_MARGIN;

/** (g)'s connection count for this run, and the open-file limit the run needs. */
export interface IdlePlan {
  /** Idle connections per target (the same for every target, so the figures compare). */
  readonly count: number;
  /** What the options asked for (`--idle-connections`, else the default). */
  readonly asked: number;
  /** `count` is below `asked`: the open-file limit holds no more. */
  readonly lowered: boolean;
  readonly fdLimit: number;
  readonly fdsNeeded: number;
}

/**
 * Chooses (g)'s count for `fdLimit` (the open-file limit, which the bench cannot raise): the
 * one asked when it fits; else, for the default, the most that fits (in hundreds) for every
 * target, the one needing most descriptors per connection deciding; an explicit
 * `--idle-connections` that does not fit throws, naming the limit and the count that fits.
 */
export function planIdle(
  fdLimit: number,
  options: {
    readonly only: ReadonlySet<string>;
    readonly targetNames: ReadonlySet<string>;
    readonly idleConnections: number;
    readonly idleExplicit: boolean;
  },
): IdlePlan {
  const asked = options.idleConnections;
  const plan = (count: number) => ({ count, asked, lowered: count < asked, fdLimit });
  if (!options.only.has("g")) return { ...plan(asked), fdsNeeded: MIN_FD_LIMIT };
  const perConn = options.targetNames.has("ours-haproxy")
    ? HAPROXY_ENGINE_FDS_PER_IDLE
    : FDS_PER_IDLE;
  const need = (count: number) => Math.max(MIN_FD_LIMIT, count * perConn + FD_MARGIN);
  // Below MIN_FD_LIMIT preflight fails anyway; from it up, at least 2,500 fit.
  if (need(asked) <= fdLimit || fdLimit < MIN_FD_LIMIT) {
    return { ...plan(asked), fdsNeeded: need(asked) };
  }
  const fits = Math.floor((fdLimit - FD_MARGIN) / perConn / 100) * 100;
  const why = `open-file limit ${fdLimit}: (g) needs ${perConn} descriptors per idle connection${perConn > FDS_PER_IDLE ? " with target ours-haproxy" : ""} and ${FD_MARGIN} more`;
  if (options.idleExplicit) {
    throw new Error(`--idle-connections ${asked} does not fit the ${why}: at most ${fits} fit`);
  }
  return { ...plan(fits), fdsNeeded: need(fits) };
}

/** The open-file limit this process (and so every process it starts) has. */
export function openFileLimit(): number {
  return Number(sh("ulimit -n"));
}

function sh(command: string): string {
  const r = spawnSync("sh", ["-c", command], { encoding: "utf8", timeout: 10_000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
}

export interface Cores {
  readonly proxy: number[];
  readonly client: number[];
}

/** Throws with every missing piece at once, or returns the core split. */
export function preflight(minFds = MIN_FD_LIMIT): Cores {
  const problems: string[] = [];
  for (const tool of TOOLS) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0)
      problems.push(`${tool} not found`);
  }
  try {
    readFileSync(STREAM_MODULE);
  } catch {
    problems.push(`${STREAM_MODULE} missing (Debian package libnginx-mod-stream)`);
  }
  const fds = openFileLimit();
  if (!(fds >= minFds)) problems.push(`open-file limit ${fds} < ${minFds}`);
  const n = availableParallelism();
  if (n < 2) problems.push("needs at least 2 CPUs: one for the proxy, one for client and backend");
  if (problems.length > 0) {
    throw new Error(
      `bench preflight failed:\n  ${problems.join("\n  ")}\n` +
        "Debian: apt-get install haproxy nginx-light libnginx-mod-stream nghttp2-client wrk util-linux gcc",
    );
  }
  return { proxy: [0], client: Array.from({ length: n - 1 }, (_, i) => i + 1) };
}

export const cpuList = (cpus: readonly number[]): string => cpus.join(",");

/** Keeps the harness itself (all its threads) off the proxy core. */
export function pinSelf(cpus: readonly number[]): void {
  spawnSync("taskset", ["-a", "-cp", cpuList(cpus), String(process.pid)], { stdio: "ignore" });
}

export interface MachineInfo {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly kernel: string;
  readonly versions: Record<string, string>;
}

export function machineInfo(): MachineInfo {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const first = (s: string): string => s.split("\n")[0] ?? "";
  return {
    nproc: cpus().length, // not availableParallelism(): the harness has pinned itself by now
    cpuModel: model,
    kernel: release(),
    versions: {
      node: `${process.version} (OpenSSL ${process.versions.openssl})`,
      haproxy: first(sh("haproxy -v")),
      nginx: first(sh("nginx -v")),
      h2load: first(sh("h2load --version")),
      wrk: first(sh("wrk -v")),
      openssl: first(sh("openssl version")),
    },
  };
}

/** `v20.20.2 (OpenSSL 3.0.19)` of another node binary (`--base-node`); throws when it does not run. */
export function nodeVersion(bin: string): string {
  const r = spawnSync(
    bin,
    ["-p", 'process.version + " (OpenSSL " + process.versions.openssl + ")"'],
    {
      encoding: "utf8",
      timeout: 10_000,
    },
  );
  if (r.status !== 0) throw new Error(`--base-node ${bin} does not run: ${r.stderr || r.error}`);
  return r.stdout.trim();
}
