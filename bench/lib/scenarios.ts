/**
 * Scenarios (a)-(f): one load against one target at a time, with the target's CPU time read
 * from /proc before and after (every process of its groups, `procCpuUs`). Rounds interleave the targets (rotating their order), so a slow
 * drift of the machine spreads over all of them instead of landing on one.
 */
import { performance } from "node:perf_hooks";
import { type LoadContext, type LoadResult, type LoadSpec, runLoad } from "./load.js";
import { busyShare, coreTimes, procCpuUs, sleep } from "./procs.js";
import { LARGE_PATH, type Target } from "./targets.js";

export type ScenarioId = "a" | "b" | "c" | "d" | "e" | "f" | "g" | "h";

export interface LoadScenario {
  readonly id: ScenarioId;
  readonly title: string;
  readonly route: "term" | "pass";
  readonly load: LoadSpec;
  /** What one operation is. */
  readonly unit: "conn" | "req" | "MiB";
}

export const LOAD_SCENARIOS: readonly LoadScenario[] = [
  {
    id: "a",
    title: "termination, new connection per request, full handshakes",
    route: "term",
    load: { tool: "h2load", connections: 32, path: "/", closeEach: true, tls: "full" },
    unit: "conn",
  },
  {
    id: "b",
    title: "termination, new connection per request, TLS 1.3 resumption, each ticket used once",
    route: "term",
    load: { tool: "h2load", connections: 32, path: "/", closeEach: true, tls: "once" },
    unit: "conn",
  },
  {
    id: "c",
    title: "termination, keep-alive, 50 connections",
    route: "term",
    load: { tool: "wrk", connections: 50, path: "/", closeEach: false, tls: "full" },
    unit: "req",
  },
  {
    id: "d",
    title: "passthrough, 1 MiB downloads (keep-alive, 8 connections)",
    route: "pass",
    load: { tool: "wrk", connections: 8, path: LARGE_PATH, closeEach: false, tls: "full" },
    unit: "MiB",
  },
  {
    id: "e",
    title: "passthrough, new connection per request, full handshakes",
    route: "pass",
    load: { tool: "h2load", connections: 32, path: "/", closeEach: true, tls: "full" },
    unit: "conn",
  },
  {
    id: "f",
    title: "termination, one connection, back-to-back requests",
    route: "term",
    load: { tool: "wrk", connections: 1, path: "/", closeEach: false, tls: "full" },
    unit: "req",
  },
];

export interface Sample extends LoadResult {
  readonly throughput: number;
  /** Proxy CPU time per operation, µs; NaN for "direct". */
  readonly cpuUsPerOp: number;
  /** The proxy's own CPU time over the run's wall time (1 = one core saturated by it). */
  readonly proxyUtil: number;
  /**
   * Busy share of the proxy core and of the client cores during the run (0..1), from
   * /proc/stat: includes anything else the machine runs, so it shows interference.
   */
  readonly proxyCoreBusy: number;
  readonly clientCoreBusy: number;
}

export interface Timing {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly runs: number;
}

export interface CoreSets {
  readonly proxy: readonly number[];
  readonly client: readonly number[];
}

/** Requests per second seen last, per scenario and target, to size h2load's request count. */
const lastRate = new Map<string, number>();

export async function measureOnce(
  ctx: LoadContext,
  cores: CoreSets,
  scenario: LoadScenario,
  target: Target,
  seconds: number,
): Promise<Sample> {
  const key = `${scenario.id}/${target.name}`;
  const rate = lastRate.get(key);
  // Without a rate yet (the warm-up), a count a slow target finishes in about `seconds`;
  // then enough for `seconds` at the rate seen last.
  const requests = rate
    ? Math.min(5_000_000, Math.max(scenario.load.connections * 10, Math.round(rate * seconds)))
    : Math.round(scenario.load.connections * 20 * Math.max(1, seconds));
  const endpoint = scenario.route === "term" ? target.term : target.pass;
  const proc = target.proc;
  const cores0 = coreTimes();
  const wall0 = performance.now();
  const cpu0 = proc === undefined ? Number.NaN : procCpuUs(proc);
  const result = await runLoad(ctx, scenario.load, endpoint, {
    seconds,
    requests,
    timeoutMs: Math.max(30_000, seconds * 4000 + 20_000),
  });
  await sleep(150); // let the proxy finish closing what the client left; that is its work too
  const cpu1 = proc === undefined ? Number.NaN : procCpuUs(proc);
  const cores1 = coreTimes();
  const wallUs = (performance.now() - wall0) * 1000;
  if (result.ops <= 0) throw new Error(`${key}: no successful operation`);
  const throughput = result.ops / result.seconds;
  lastRate.set(key, throughput);
  return {
    ...result,
    throughput,
    cpuUsPerOp: (cpu1 - cpu0) / result.ops,
    proxyUtil: (cpu1 - cpu0) / wallUs,
    proxyCoreBusy: busyShare(cores0, cores1, cores.proxy),
    clientCoreBusy: busyShare(cores0, cores1, cores.client),
  };
}

export type Progress = (line: string) => void;

/** Warm-up of every target, then `runs` interleaved rounds; samples per target name. */
export async function runScenario(
  ctx: LoadContext,
  cores: CoreSets,
  scenario: LoadScenario,
  targets: readonly Target[],
  timing: Timing,
  progress: Progress,
): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
  for (const target of targets) {
    await measureOnce(ctx, cores, scenario, target, timing.warmupSeconds);
  }
  for (let round = 0; round < timing.runs; round++) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length] as Target);
    for (const target of order) {
      const s = await measureOnce(ctx, cores, scenario, target, timing.seconds);
      samples.get(target.name)?.push(s);
      progress(
        `  (${scenario.id}) run ${round + 1}/${timing.runs} ${target.name.padEnd(7)} ` +
          `${s.throughput.toFixed(0).padStart(7)} ${scenario.unit}/s  ` +
          `${Number.isNaN(s.cpuUsPerOp) ? "      -" : s.cpuUsPerOp.toFixed(1).padStart(7)} µs/op  ` +
          `util ${Number.isNaN(s.proxyUtil) ? "-" : (s.proxyUtil * 100).toFixed(0)}% ` +
          `cores ${(s.proxyCoreBusy * 100).toFixed(0)}%/${(s.clientCoreBusy * 100).toFixed(0)}%` +
          (s.errors > 0 ? `  errors ${s.errors}` : "") +
          (s.handshakes > 0 ? `  resumed ${s.resumed}/${s.handshakes}` : ""),
      );
    }
  }
  return samples;
}
