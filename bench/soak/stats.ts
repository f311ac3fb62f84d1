/**
 * The soak's figures from its samples, as pure functions (tested in
 * tests/unit/bench/soak.test.ts): the RSS slope of each gateway process (a least-squares line
 * through the samples taken under load after the warm-up, so one GC or one burst moves it
 * little), its descriptors before the load and after it, and the summary lines `npm run bench`
 * prints.
 */

/** One reading of one process: ms since the soak started, VmRSS, open descriptors, CPU. */
export interface ProcSample {
  readonly atMs: number;
  readonly rssKiB: number;
  readonly fds: number;
  /** utime + stime, seconds. */
  readonly cpuS: number;
}

export type Role = "primary" | "worker" | "wireguard-go";

export interface ProcessSeries {
  readonly role: Role;
  readonly pid: number;
  readonly samples: readonly ProcSample[];
}

/** When each phase began, ms since the soak started. */
export interface Timeline {
  readonly loadStartMs: number;
  readonly warmEndMs: number;
  readonly loadEndMs: number;
}

export interface ProcessSummary {
  readonly role: Role;
  readonly pid: number;
  /** Samples under load after the warm-up: the ones the slope is fitted to. */
  readonly samples: number;
  readonly rssStartKiB: number;
  readonly rssEndKiB: number;
  readonly rssMaxKiB: number;
  /** Over all samples under load after the warm-up. */
  readonly slopeKiBPerMin: number;
  /** Over the second half of them: growth that slows down is warm-up, growth that does not is not. */
  readonly lateSlopeKiBPerMin: number;
  readonly rssSettledKiB: number;
  /** Before the load started (absent for a process started later, a restarted worker). */
  readonly fdsBefore: number | null;
  readonly fdsStart: number;
  readonly fdsMaxUnderLoad: number;
  /** After the load stopped and the settle. */
  readonly fdsEnd: number;
  /** CPU time over the load, as a share of one core. */
  readonly cpuShare: number;
}

/** Least-squares slope of y over x; NaN with fewer than two distinct x. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of points) {
    sxx += (x - mx) * (x - mx);
    sxy += (x - mx) * (y - my);
  }
  return sxx === 0 ? Number.NaN : sxy / sxx;
}

/** RSS slope in KiB per minute of samples. */
export function rssSlope(samples: readonly ProcSample[]): number {
  return slope(samples.map((s) => [s.atMs / 60_000, s.rssKiB]));
}

const last = <T>(xs: readonly T[]): T | undefined => xs[xs.length - 1];

/**
 * One process's figures. Undefined for a process with fewer than two samples under load after
 * the warm-up (one that died early, or a replacement that came late).
 */
export function summarize(series: ProcessSeries, t: Timeline): ProcessSummary | undefined {
  const warm = series.samples.filter((s) => s.atMs >= t.warmEndMs && s.atMs <= t.loadEndMs);
  const first = warm[0];
  const end = last(warm);
  const settled = last(series.samples.filter((s) => s.atMs > t.loadEndMs));
  if (warm.length < 2 || !first || !end || !settled) return undefined;
  const before = last(series.samples.filter((s) => s.atMs <= t.loadStartMs));
  const underLoad = series.samples.filter((s) => s.atMs > t.loadStartMs && s.atMs <= t.loadEndMs);
  const loadStart = before ?? series.samples[0] ?? first;
  const loadEnd = last(underLoad) ?? end;
  const seconds = (loadEnd.atMs - loadStart.atMs) / 1000;
  return {
    role: series.role,
    pid: series.pid,
    samples: warm.length,
    rssStartKiB: first.rssKiB,
    rssEndKiB: end.rssKiB,
    rssMaxKiB: Math.max(...warm.map((s) => s.rssKiB)),
    slopeKiBPerMin: rssSlope(warm),
    lateSlopeKiBPerMin: rssSlope(warm.slice(Math.floor(warm.length / 2))),
    rssSettledKiB: settled.rssKiB,
    fdsBefore: before ? before.fds : null,
    fdsStart: first.fds,
    fdsMaxUnderLoad: Math.max(...underLoad.map((s) => s.fds)),
    fdsEnd: settled.fds,
    cpuShare: seconds > 0 ? (loadEnd.cpuS - loadStart.cpuS) / seconds : Number.NaN,
  };
}

/** What one kind of traffic did (traffic.ts counts, the soak adds them up). */
export interface KindTotals {
  /** Connections (or sessions, streams) started and ended as expected. */
  readonly started: number;
  readonly ok: number;
  readonly errors: number;
  /** HTTP requests answered 200 with the whole body. */
  readonly requests: number;
  /** Starts the client skipped: `maxInFlight` reached (the client fell behind). */
  readonly skipped: number;
  /** Stalled handshakes the gateway cut (its handshake timeout), as it should. */
  readonly cut?: number;
  /** The first distinct error messages. */
  readonly errorSamples: readonly string[];
}

export interface ChurnTotals {
  readonly registered: number;
  readonly reregistered: number;
  readonly removed: number;
  /** RemoveInstance of an instance the gateway had recycled already: expected, not an error. */
  readonly removedAlreadyGone: number;
  readonly errors: number;
  readonly skipped: number;
  readonly registerP50Ms: number;
  readonly registerP99Ms: number;
  readonly errorSamples: readonly string[];
}

export interface SoakResult {
  readonly date: string;
  readonly minutes: number;
  readonly warmupMinutes: number;
  readonly sampleEverySeconds: number;
  readonly settleSeconds: number;
  readonly setup: Record<string, unknown>;
  readonly machine: {
    readonly cpus: number;
    readonly loadAverageStart: number;
    readonly loadAverageEnd: number;
  };
  readonly processes: readonly ProcessSummary[];
  /** Workers started after the first ones (a replacement means one died). */
  readonly workerRestarts: number;
  readonly traffic: Readonly<Record<string, KindTotals>>;
  readonly churn: ChurnTotals;
  /** From the gateway's log: instances its recycling removed. */
  readonly recycled: number;
  /** Registered instances and open client connections after the settle (admin API). */
  readonly end: { readonly registered: number; readonly openConnections: number };
  /** Log lines at level error or worse, and the first few. */
  readonly gatewayErrors: number;
  readonly gatewayErrorSamples: readonly string[];
  /** Every sample: [s since the start, RSS KiB, descriptors] per process, for a closer look. */
  readonly series: readonly { role: Role; pid: number; points: [number, number, number][] }[];
}

/**
 * The result as the JSON file holds it: fractions to 4 significant digits, and each sample
 * `[s, KiB, fds]` on one line, so the file stays readable and small.
 */
export function resultJson(r: SoakResult): string {
  const text = JSON.stringify(
    r,
    (_k, v: unknown) =>
      typeof v === "number" && !Number.isInteger(v) && Number.isFinite(v)
        ? Number(v.toPrecision(4))
        : v,
    2,
  );
  return `${text.replace(/\[\s+(-?\d+),\s+(-?\d+),\s+(-?\d+)\s+\]/g, "[$1, $2, $3]")}\n`;
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : "-");
const mib = (kib: number): string => (kib / 1024).toFixed(1);

/** The lines `npm run bench` prints (and BENCHMARKS.md quotes). */
export function soakLines(r: SoakResult): string[] {
  const requests = Object.values(r.traffic).reduce((n, k) => n + k.requests, 0);
  const conns = Object.values(r.traffic).reduce((n, k) => n + k.ok, 0);
  const errors = Object.values(r.traffic).reduce((n, k) => n + k.errors, 0);
  const kinds = Object.entries(r.traffic)
    .map(([name, k]) => {
      const notes = [
        ...(k.cut !== undefined ? [`${k.cut} cut by the gateway`] : []),
        ...(k.errors > 0 ? [`${k.errors} errors`] : []),
        ...(k.skipped > 0 ? [`${k.skipped} skipped`] : []),
      ];
      return `${name} ${k.ok}/${k.started}${notes.length > 0 ? ` (${notes.join(", ")})` : ""}`;
    })
    .join(", ");
  const c = r.churn;
  return [
    `${r.minutes} min of mixed traffic (${r.warmupMinutes} min warm-up), samples every ${r.sampleEverySeconds} s; load average ${r.machine.loadAverageStart.toFixed(2)} → ${r.machine.loadAverageEnd.toFixed(2)} on ${r.machine.cpus} CPUs`,
    ...r.processes.map(
      (p) =>
        `${`${p.role} ${p.pid}`.padEnd(20)} RSS ${mib(p.rssStartKiB)} → ${mib(p.rssEndKiB)} MiB, slope ${f1(p.slopeKiBPerMin)} KiB/min (second half ${f1(p.lateSlopeKiBPerMin)}), ${mib(p.rssSettledKiB)} MiB settled; fds ${p.fdsBefore ?? "-"} before, ${p.fdsStart} at start, ${p.fdsMaxUnderLoad} max, ${p.fdsEnd} at the end; CPU ${(p.cpuShare * 100).toFixed(0)} %`,
    ),
    `traffic: ${requests} requests over ${conns} connections, ${errors} errors; ${kinds}`,
    `registrations: ${c.registered} new, ${c.reregistered} again with a new key, ${c.removed} removed (${c.removedAlreadyGone} recycled first), ${r.recycled} recycled, ${c.errors} errors; RegisterCvm p50 ${f1(c.registerP50Ms)} ms, p99 ${f1(c.registerP99Ms)} ms`,
    `after the load: ${r.end.openConnections} open connections, ${r.end.registered} instances; ${r.workerRestarts} worker restarts; ${r.gatewayErrors} error lines in the gateway's log`,
  ];
}
