/** What the bench needs from the machine, and what it reports about it. */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";

const TOOLS = ["taskset", "haproxy", "nginx", "h2load", "wrk", "gcc", "openssl"] as const;
const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";
/** Scenario (g) holds 5,000 connections: 10,000 descriptors in our gateway (client + backend). */
export const MIN_FD_LIMIT = 12_000;
/**
 * The HAProxy engine holds 4 descriptors per terminated connection (client, the Unix socket's
 * two ends to its terminating frontend, backend), all in HAProxy's one worker.
 */
const HAPROXY_ENGINE_FDS_PER_IDLE = 4;

/** The open-file limit a run needs: (g) with ours-haproxy needs 4 per idle connection and some. */
export function fdLimitFor(options: {
  readonly only: ReadonlySet<string>;
  readonly targetNames: ReadonlySet<string>;
  readonly idleConnections: number;
}): number {
  const engine = options.only.has("g") && options.targetNames.has("ours-haproxy");
  return engine
    ? Math.max(MIN_FD_LIMIT, options.idleConnections * HAPROXY_ENGINE_FDS_PER_IDLE + 1_000)
    : MIN_FD_LIMIT;
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
  const fds = Number(sh("ulimit -n"));
  if (!(fds >= minFds)) {
    problems.push(
      `open-file limit ${fds} < ${minFds}${minFds > MIN_FD_LIMIT ? " ((g) with ours-haproxy: lower --idle-connections, or leave that target out)" : ""}`,
    );
  }
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
