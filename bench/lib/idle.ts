/**
 * Scenario (g): memory per idle terminated connection. Per proxy and run: a fresh proxy
 * process, a warm-up (100 connections opened and closed), the RSS of its process groups,
 * then `count` connections that each did one request and now sit idle, RSS again after a
 * settle time. bytes per connection = RSS delta / connections still open.
 */
import { readFileSync, rmSync } from "node:fs";
import type { IdlePlan } from "./machine.js";
import { readLineUntil } from "./net.js";
import { type ProcessSet, procRssBytes, sleep } from "./procs.js";
import type { PROXIES, Target } from "./targets.js";

export interface IdleSample {
  readonly connections: number;
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly bytesPerConn: number;
  /**
   * Ours only, per connection: growth of live JS objects (V8 heap used), of the V8 heap as
   * committed (used plus slack), and of everything outside the V8 heap (RSS minus heap total:
   * OpenSSL, libuv and Node's native objects, Buffers, malloc slack).
   */
  readonly heapPerConn?: number;
  readonly heapTotalPerConn?: number;
  readonly outsideHeapPerConn?: number;
}

interface MemoryUsage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
}

/** Asks our gateway for `process.memoryUsage()` (SIGUSR2, see gateway-bench.ts). */
async function memoryUsage(target: Target): Promise<MemoryUsage | undefined> {
  if (!target.memoryFile || !target.proc) return undefined;
  rmSync(target.memoryFile, { force: true });
  process.kill(target.proc.pid, "SIGUSR2");
  for (let i = 0; i < 40; i++) {
    await sleep(50);
    try {
      return JSON.parse(readFileSync(target.memoryFile, "utf8")) as MemoryUsage;
    } catch {
      // not written yet
    }
  }
  return undefined;
}

export interface IdleContext {
  readonly ps: ProcessSet;
  readonly dir: string;
  readonly clientCpus: string;
  /** Bundled `bench/idle-client.ts`. */
  readonly idleClient: string;
  /** The groups the idle client offers (`--idle-groups`); @default the client's own */
  readonly groups?: string | undefined;
}

interface Status {
  open: number;
  failed: number;
  done?: boolean;
}

async function holdConnections(
  ctx: IdleContext,
  target: Target,
  count: number,
  then: (status: Status) => Promise<number>,
): Promise<{ status: Status; value: number }> {
  const proc = ctx.ps.spawn(
    `idle-${target.name}`,
    process.execPath,
    [
      ctx.idleClient,
      "--port",
      String(target.term.port),
      "--servername",
      target.term.sni,
      "--count",
      String(count),
      ...(ctx.groups === undefined ? [] : ["--groups", ctx.groups]),
    ],
    { cpus: ctx.clientCpus, stdout: "pipe", logDir: ctx.dir },
  );
  try {
    const stdout = proc.child.stdout;
    if (!stdout) throw new Error("idle client has no stdout");
    const parse = (line: string): Status | undefined => {
      try {
        return JSON.parse(line) as Status;
      } catch {
        return undefined;
      }
    };
    const first = await readLineUntil(
      stdout,
      (line) => {
        const s = parse(line);
        return s?.done ? s : undefined;
      },
      Math.max(30_000, count * 20),
      `idle client for ${target.name}`,
    );
    if (first.failed > 0) {
      throw new Error(`${target.name}: ${first.failed} of ${count} idle connections failed`);
    }
    let latest = first;
    stdout.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        const s = parse(line);
        if (s) latest = s;
      }
    });
    const value = await then(first);
    await sleep(600); // one more status line after the measurement
    if (latest.open < first.open) {
      throw new Error(`${target.name}: ${first.open - latest.open} idle connections dropped`);
    }
    return { status: latest, value };
  } finally {
    await ctx.ps.stop(proc, 2000);
  }
}

export async function measureIdle(
  ctx: IdleContext,
  target: Target,
  count: number,
  settleMs: number,
): Promise<IdleSample> {
  const proc = target.proc;
  if (proc === undefined) throw new Error("scenario (g) needs a proxy process");
  await holdConnections(ctx, target, 100, async () => 0);
  await sleep(500);
  const rssBefore = procRssBytes(proc);
  const memBefore = await memoryUsage(target);
  let memAfter: MemoryUsage | undefined;
  const { status, value: rssAfter } = await holdConnections(ctx, target, count, async () => {
    await sleep(settleMs);
    const rss = procRssBytes(proc);
    memAfter = await memoryUsage(target);
    return rss;
  });
  const per = (f: (m: MemoryUsage) => number): number | undefined =>
    memBefore && memAfter ? (f(memAfter) - f(memBefore)) / status.open : undefined;
  const heapPerConn = per((m) => m.heapUsed);
  const heapTotalPerConn = per((m) => m.heapTotal);
  const outsideHeapPerConn = per((m) => m.rss - m.heapTotal);
  return {
    connections: status.open,
    rssBefore,
    rssAfter,
    bytesPerConn: (rssAfter - rssBefore) / status.open,
    ...(heapPerConn === undefined ||
    heapTotalPerConn === undefined ||
    outsideHeapPerConn === undefined
      ? {}
      : { heapPerConn, heapTotalPerConn, outsideHeapPerConn }),
  };
}

const kib = (bytes: number | undefined): string => ((bytes ?? Number.NaN) / 1024).toFixed(1);

/**
 * (g) for every proxy target: `runs` rounds, a fresh process per target and round, each
 * holding `plan.count` connections (the same for all, so their figures compare). Returns
 * each target's samples.
 */
export async function idleScenario(
  ctx: IdleContext,
  run: {
    readonly proxies: readonly (typeof PROXIES)[number][];
    readonly plan: IdlePlan;
    readonly runs: number;
    readonly settleMs: number;
  },
  start: (name: (typeof PROXIES)[number]) => Promise<Target>,
  progress: (line: string) => void,
): Promise<Map<string, IdleSample[]>> {
  const { plan } = run;
  progress(
    `(g) ${plan.count} idle terminated connections per proxy${plan.lowered ? ` (not ${plan.asked}: the open-file limit ${plan.fdLimit} holds no more)` : ""}${ctx.groups ? `, the client offering ${ctx.groups}` : ""}`,
  );
  const idle = new Map<string, IdleSample[]>(run.proxies.map((p) => [p, []]));
  for (let round = 0; round < run.runs; round++) {
    for (const name of run.proxies) {
      const target = await start(name);
      try {
        const s = await measureIdle(ctx, target, plan.count, run.settleMs);
        idle.get(name)?.push(s);
        progress(
          `  (g) run ${round + 1}/${run.runs} ${name.padEnd(7)} ${s.connections} conns, ` +
            `RSS ${(s.rssBefore / 2 ** 20).toFixed(1)} → ${(s.rssAfter / 2 ** 20).toFixed(1)} MiB, ` +
            `${(s.bytesPerConn / 1024).toFixed(1)} KiB/conn` +
            (s.heapPerConn === undefined
              ? ""
              : ` (JS objects ${kib(s.heapPerConn)}, V8 heap committed ${kib(s.heapTotalPerConn)}, outside the V8 heap ${kib(s.outsideHeapPerConn)} KiB)`),
        );
      } finally {
        if (target.proc) await ctx.ps.stop(target.proc);
      }
    }
  }
  return idle;
}
