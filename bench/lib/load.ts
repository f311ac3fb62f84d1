/**
 * The load generators, Debian's h2load and wrk, run on the client cores with the LD_PRELOAD shim
 * (`tlsshim.c`): it forces full handshakes unless resumption is wanted, counts handshakes and
 * resumptions, times each connection, and resolves the routing names to 127.0.0.1 for wrk.
 *
 * - h2load for a new connection per request (`Connection: close`): its timing mode (`-D`)
 *   hangs with reconnecting clients in 1.52, so it runs a request count sized from the previous
 *   run's rate. Latency is the shim's per-connection time (first handshake call to shutdown),
 *   since h2load and wrk both time only the request after the handshake.
 * - wrk for keep-alive runs: latency is its per-request histogram (`wrk-report.lua`).
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { HOST } from "./net.js";
import { type ProcessSet, sleep } from "./procs.js";
import { BASE_DOMAIN, type Endpoint } from "./targets.js";

export interface LoadSpec {
  readonly tool: "h2load" | "wrk";
  readonly connections: number;
  readonly path: string;
  /** A new connection per request (`Connection: close`). */
  readonly closeEach: boolean;
  /**
   * "full": every handshake is a full one. "once": the client resumes, using each ticket at
   * most once (as browsers do), so resumption continues only if the server sends a fresh ticket.
   */
  readonly tls: "full" | "once";
}

export interface LoadContext {
  readonly ps: ProcessSet;
  readonly dir: string;
  readonly clientCpus: string;
  readonly shim: string;
  readonly luaScript: string;
}

export interface LoadResult {
  /** Successful requests (one per connection when `closeEach`). */
  readonly ops: number;
  readonly seconds: number;
  readonly bytes: number;
  /** Failed requests, non-2xx answers, socket errors and timeouts. */
  readonly errors: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** Completed TLS handshakes and how many of them resumed a session (from the shim). */
  readonly handshakes: number;
  readonly resumed: number;
}

interface ShimStats {
  handshakes: number;
  resumed: number;
  closed: number;
  hist: [number, number][];
}

let runCounter = 0;

/** Runs one load; `seconds` for wrk, `requests` for h2load; killed after `timeoutMs`. */
export async function runLoad(
  ctx: LoadContext,
  spec: LoadSpec,
  endpoint: Endpoint,
  budget: { seconds: number; requests: number; timeoutMs: number },
): Promise<LoadResult> {
  const id = ++runCounter;
  const statsFile = join(ctx.dir, `shim-${id}.json`);
  const env = {
    ...process.env,
    LD_PRELOAD: ctx.shim,
    BENCH_TLS_NO_RESUME: spec.tls === "full" ? "1" : "0",
    BENCH_TLS_TICKET_ONCE: spec.tls === "once" ? "1" : "0",
    BENCH_TLS_STATS: statsFile,
    BENCH_RESOLVE_SUFFIX: `.${BASE_DOMAIN}`,
  };
  const url = `https://${endpoint.sni}:${endpoint.port}${spec.path}`;
  const close = spec.closeEach ? ["-H", "Connection: close"] : [];
  const [command, args] =
    spec.tool === "h2load"
      ? [
          "h2load",
          [
            "--h1",
            "-t1",
            `-c${spec.connections}`,
            `-n${Math.max(budget.requests, spec.connections)}`,
            ...close,
            `--connect-to=${HOST}:${endpoint.port}`,
            url,
          ],
        ]
      : [
          "wrk",
          [
            "-t1",
            `-c${spec.connections}`,
            `-d${Math.max(1, Math.round(budget.seconds))}s`, // wrk takes whole seconds
            "--timeout",
            "10s",
            "-s",
            ctx.luaScript,
            ...close,
            url,
          ],
        ];
  const proc = ctx.ps.spawn(`${spec.tool}-${id}`, command, args, {
    cpus: ctx.clientCpus,
    env,
    stdout: "pipe",
    logDir: ctx.dir,
  });
  const chunks: Buffer[] = [];
  proc.child.stdout?.on("data", (c: Buffer) => chunks.push(c));
  const outcome = await Promise.race([proc.exited, sleep(budget.timeoutMs).then(() => "timeout")]);
  if (outcome === "timeout") {
    await ctx.ps.stop(proc, 1000);
    throw new Error(`${spec.tool} did not finish within ${budget.timeoutMs} ms (${url})`);
  }
  await ctx.ps.stop(proc, 1000); // reaps the group; the leader is gone already
  const out = Buffer.concat(chunks).toString("utf8");
  const { code } = outcome as { code: number | null };
  if (code !== 0)
    throw new Error(`${spec.tool} exited ${code}: ${out.slice(-500)} (see ${proc.logFile})`);

  const shim = readShim(statsFile);
  const parsed = spec.tool === "h2load" ? parseH2load(out) : parseWrk(out);
  const latency = spec.closeEach
    ? { p50Us: percentile(shim.hist, 50), p99Us: percentile(shim.hist, 99) }
    : { p50Us: parsed.p50Us, p99Us: parsed.p99Us };
  return { ...parsed, ...latency, handshakes: shim.handshakes, resumed: shim.resumed };
}

function readShim(file: string): ShimStats {
  try {
    const stats = JSON.parse(readFileSync(file, "utf8")) as ShimStats;
    rmSync(file, { force: true });
    return stats;
  } catch {
    return { handshakes: 0, resumed: 0, closed: 0, hist: [] };
  }
}

/** Percentile of the shim's log-linear histogram: the bucket's low bound (within 1/64). */
export function percentile(hist: readonly (readonly [number, number])[], p: number): number {
  const total = hist.reduce((sum, [, n]) => sum + n, 0);
  if (total === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (const [low, n] of hist) {
    seen += n;
    if (seen >= rank) return low;
  }
  return hist[hist.length - 1]?.[0] ?? Number.NaN;
}

type Parsed = Omit<LoadResult, "handshakes" | "resumed">;

const UNIT_S: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1 };

export function parseH2load(out: string): Parsed {
  const fin = /finished in ([\d.]+)(us|ms|s),/.exec(out);
  const req =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      out,
    );
  const status = /status codes: (\d+) 2xx/.exec(out);
  const traffic = /traffic: \S+ \((\d+)\) total/.exec(out);
  if (!fin || !req || !status) throw new Error(`unexpected h2load output: ${out.slice(-500)}`);
  const seconds = Number(fin[1]) * (UNIT_S[fin[2] ?? "s"] ?? 1);
  const total = Number(req[1]);
  const ok2xx = Number(status[1]);
  return {
    ops: ok2xx,
    seconds,
    bytes: Number(traffic?.[1] ?? 0),
    errors: total - ok2xx,
    p50Us: Number.NaN,
    p99Us: Number.NaN,
  };
}

interface WrkJson {
  requests: number;
  durationUs: number;
  bytes: number;
  connectErrors: number;
  readErrors: number;
  writeErrors: number;
  statusErrors: number;
  timeouts: number;
  p50Us: number;
  p99Us: number;
}

export function parseWrk(out: string): Parsed {
  const line = out.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (!line) throw new Error(`unexpected wrk output: ${out.slice(-500)}`);
  const w = JSON.parse(line.slice("BENCH_JSON ".length)) as WrkJson;
  const errors = w.connectErrors + w.readErrors + w.writeErrors + w.timeouts;
  return {
    ops: w.requests - w.statusErrors,
    seconds: w.durationUs / 1e6,
    bytes: w.bytes,
    errors: errors + w.statusErrors,
    p50Us: w.p50Us,
    p99Us: w.p99Us,
  };
}
