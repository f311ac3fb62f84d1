/**
 * Turns samples into result rows (median and spread per scenario and target, ratios to
 * HAProxy and to direct), prints them as a table, and judges the goals of the issue.
 *
 * The main figure, the one `ratioToHaproxy` compares, depends on the scenario:
 * (a)-(e) proxy CPU µs per operation, (f) added p50 latency over direct, (g) bytes per idle
 * connection. `ratioToDirect` compares throughput, except (f) where it compares p50.
 */
import type { IdleSample } from "./idle.js";
import type { LoadScenario, Sample, ScenarioId } from "./scenarios.js";

export interface Row {
  /** (i), the control plane per engine, runs as a process of its own but gives rows too. */
  readonly scenario: ScenarioId | "i";
  readonly target: string;
  /** Operations per second (connections, requests, MiB or lookups: see `unit`). */
  readonly throughput: number | null;
  readonly cpuUsPerOp: number | null;
  readonly p50Us: number | null;
  readonly p99Us: number | null;
  readonly bytesPerConn: number | null;
  readonly ratioToHaproxy: number | null;
  readonly ratioToDirect: number | null;
  readonly title: string;
  readonly unit: string;
  readonly runs: number;
  /** (max - min) / median of the main figure over the runs. */
  readonly spread: number | null;
  readonly throughputSpread: number | null;
  /** (f): p50/p99 minus direct's. */
  readonly addedP50Us?: number | null;
  readonly addedP99Us?: number | null;
  /** Share of handshakes that resumed a session. */
  readonly reuseRate?: number | null;
  readonly proxyUtil?: number | null;
  readonly proxyCoreBusy?: number | null;
  readonly clientCoreBusy?: number | null;
  readonly errors?: number;
  readonly routeOnlyOpsPerSec?: number;
  /** (g), ours: live JS objects, V8 heap committed, and memory outside the V8 heap, per conn. */
  readonly heapBytesPerConn?: number | null;
  readonly heapTotalBytesPerConn?: number | null;
  readonly outsideHeapBytesPerConn?: number | null;
  /** (g): idle connections asked of every target (`planIdle`: fewer when the fd limit is low). */
  readonly idleConnections?: number;
  /** (i), ours-haproxy: HAProxy's CPU per registration, apart from the runtime's (`cpuUsPerOp`). */
  readonly haproxyCpuUsPerRegistration?: number | null;
  /** (i): until `<instance-id>-<port>` reaches the instance (no health needed), p50. */
  readonly instanceRoutableP50Us?: number | null;
}

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

function spreadOf(xs: readonly number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x));
  if (v.length < 2) return v.length === 1 ? 0 : null;
  const m = median(v);
  return m === 0 ? null : (Math.max(...v) - Math.min(...v)) / Math.abs(m);
}

const num = (x: number): number | null => (Number.isFinite(x) ? x : null);
const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a == null || b == null || b === 0 ? null : a / b;

export function loadRows(
  scenario: LoadScenario,
  samples: ReadonlyMap<string, readonly Sample[]>,
): Row[] {
  const med = (name: string, f: (s: Sample) => number): number =>
    median((samples.get(name) ?? []).map(f));
  const directP50 = med("direct", (s) => s.p50Us);
  const directP99 = med("direct", (s) => s.p99Us);
  const base = [...samples.entries()].map(([target, list]): Row => {
    const p50 = med(target, (s) => s.p50Us);
    const p99 = med(target, (s) => s.p99Us);
    const handshakes = list.reduce((n, s) => n + s.handshakes, 0);
    const isF = scenario.id === "f";
    return {
      scenario: scenario.id,
      target,
      throughput: num(med(target, (s) => s.throughput)),
      cpuUsPerOp: num(med(target, (s) => s.cpuUsPerOp)),
      p50Us: num(p50),
      p99Us: num(p99),
      bytesPerConn: null,
      ratioToHaproxy: null,
      ratioToDirect: null,
      title: scenario.title,
      unit: scenario.unit,
      runs: list.length,
      spread: isF ? spreadOf(list.map((s) => s.p50Us)) : spreadOf(list.map((s) => s.cpuUsPerOp)),
      throughputSpread: spreadOf(list.map((s) => s.throughput)),
      ...(isF ? { addedP50Us: num(p50 - directP50), addedP99Us: num(p99 - directP99) } : {}),
      reuseRate:
        scenario.load.closeEach && handshakes > 0
          ? list.reduce((n, s) => n + s.resumed, 0) / handshakes
          : null,
      proxyUtil: num(med(target, (s) => s.proxyUtil)),
      proxyCoreBusy: num(med(target, (s) => s.proxyCoreBusy)),
      clientCoreBusy: num(med(target, (s) => s.clientCoreBusy)),
      errors: list.reduce((n, s) => n + s.errors, 0),
    };
  });
  const find = (name: string): Row | undefined => base.find((r) => r.target === name);
  const haproxy = find("haproxy");
  const directRow = find("direct");
  return base.map((r) =>
    scenario.id === "f"
      ? {
          ...r,
          ratioToHaproxy: r.target === "direct" ? null : ratio(r.addedP50Us, haproxy?.addedP50Us),
          ratioToDirect: ratio(r.p50Us, directRow?.p50Us),
        }
      : {
          ...r,
          ratioToHaproxy: ratio(r.cpuUsPerOp, haproxy?.cpuUsPerOp),
          ratioToDirect: ratio(r.throughput, directRow?.throughput),
        },
  );
}

/**
 * Ours against ours as of another commit (`--base`), paired by round: each round ran both, so
 * the machine's drift between rounds cancels out of the ratio. "0.93× (0.90-0.97, 5 rounds)":
 * the median of the per-round ratios of CPU per operation, and their range. Undefined when
 * either side has no sample.
 */
export function pairedRatio(
  ours: readonly Sample[] | undefined,
  base: readonly Sample[] | undefined,
): string | undefined {
  const n = Math.min(ours?.length ?? 0, base?.length ?? 0);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = (ours?.[i]?.cpuUsPerOp ?? Number.NaN) / (base?.[i]?.cpuUsPerOp ?? Number.NaN);
    if (Number.isFinite(r)) ratios.push(r);
  }
  if (ratios.length === 0) return undefined;
  const f = (x: number): string => x.toFixed(2);
  return `${f(median(ratios))}× (${f(Math.min(...ratios))}-${f(Math.max(...ratios))}, ${ratios.length} rounds)`;
}

/** What `bench/registration/scale.ts` wrote, as far as the summary reads it. */
export interface ControlPlaneResult {
  readonly count: number;
  readonly concurrency: number;
  readonly batchMs: number;
  readonly registration: {
    readonly perSecond: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly wgApplies: number;
    readonly stateWrites: number;
  };
  readonly wg: {
    readonly peers: number;
    readonly syncconfNoChangeMs: number;
    readonly syncconfFromEmptyMs: number;
  };
  readonly state: { readonly bytes: number; readonly loadMs: number };
}

/** The control plane's figures of #9 (registration p50/p99, one apply, state load) as lines. */
export function controlPlaneLines(r: ControlPlaneResult): string[] {
  const g = r.registration;
  return [
    `register ${r.count} CVMs, ${r.concurrency} in flight: ${g.perSecond}/s, latency p50 ${g.p50Ms} ms, p99 ${g.p99Ms} ms (WireGuard batch window ${r.batchMs} ms); ${g.wgApplies} wg applies, ${g.stateWrites} state writes`,
    `wg syncconf at ${r.wg.peers} peers: ${r.wg.syncconfNoChangeMs} ms with no change, ${r.wg.syncconfFromEmptyMs} ms from empty`,
    `state at ${r.count} instances: ${(r.state.bytes / 1024).toFixed(0)} KiB, loaded in ${r.state.loadMs} ms`,
  ];
}

export interface RegionResult {
  readonly count: number;
  readonly concurrency: number;
  readonly registration: {
    readonly perSecond: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
  };
  readonly propagation: { readonly p50Ms: number; readonly p99Ms: number };
  readonly duplicateAddresses: number;
  readonly hostDeath: {
    readonly deaths: number;
    readonly droppedFromServerListsMedianMs: number;
    readonly droppedFromServerListsMaxMs: number;
  };
}

/** A region's figures (#18: registration p99 under 500 ms at 128 in flight, propagation p99 under 1 s). */
export function regionLines(r: RegionResult): string[] {
  const g = r.registration;
  const d = r.hostDeath;
  return [
    `register ${r.count} CVMs through 3 hosts, ${r.concurrency} in flight: ${g.perSecond}/s, latency p50 ${g.p50Ms} ms, p99 ${g.p99Ms} ms; ${r.duplicateAddresses} duplicate addresses`,
    `routable on the other hosts after the answer: p50 ${r.propagation.p50Ms} ms, p99 ${r.propagation.p99Ms} ms`,
    `a host SIGKILLed: out of the others' server lists after ${d.droppedFromServerListsMedianMs} ms (median of ${d.deaths}, max ${d.droppedFromServerListsMaxMs} ms); its CVMs' peers are on every host all along`,
  ];
}

/** What `bench/handover/handover.ts` wrote, as far as the summary reads it. */
export interface HandoverResult {
  readonly connectLoop: {
    readonly perSecond: number;
    readonly restart: HandoverOrderResult;
    readonly startFirst: HandoverOrderResult;
    readonly outside: HandoverPhase & { readonly longestGapMs: number | null };
    readonly oldGenerationGoneMs: readonly (number | null)[];
  };
  readonly drain: {
    readonly streams: number;
    readonly rssAtDrainStartMiB: { total: number; primary: number; workers: number };
    readonly rssWhileDrainingMiB: { median: number; max: number };
    readonly cpuWhileDrainingPercent: number;
    readonly cutWhileDraining: number;
    readonly oldGenerationExited: boolean;
    readonly exitAfterLastCloseMs: number | null;
  };
}

interface HandoverPhase {
  readonly attempts: number;
  readonly failed: number;
  readonly errors: Record<string, number>;
  readonly connectP99Ms: number | null;
}

interface HandoverOrderResult {
  readonly handovers: number;
  readonly newServesMs: readonly (number | null)[];
  readonly longestGapMs: readonly (number | null)[];
  readonly during: HandoverPhase;
}

/** A hand-over's figures (#19: no connection refused, old generations drain and exit). */
export function handoverLines(r: HandoverResult): string[] {
  const c = r.connectLoop;
  const failed = (p: HandoverPhase) =>
    `${p.failed} of ${p.attempts} failed${p.failed > 0 ? ` (${JSON.stringify(p.errors)})` : ""}`;
  const order = (what: string, o: HandoverOrderResult) =>
    `${what}, ${o.handovers}× at ${c.perSecond} new connections/s: ${failed(o.during)}; longest gap between accepts ${o.longestGapMs.join(", ")} ms (the new generation served after ${o.newServesMs.join(", ")} ms); connect p99 ${o.during.connectP99Ms} ms during, ${c.outside.connectP99Ms} ms outside`;
  const d = r.drain;
  const gone = c.oldGenerationGoneMs;
  return [
    order("as the unit restarts (old main SIGTERMed and gone, then the next started)", c.restart),
    order("next generation first, then the old main SIGTERMed", c.startFirst),
    `outside the hand-overs: ${failed(c.outside)}, longest gap between accepts ${c.outside.longestGapMs} ms; old generations ${gone.every((t) => t !== null) ? `all gone, ${Math.max(...(gone as number[]))} ms after their hand-over began at most` : "NOT all gone"}`,
    `a generation draining ${d.streams} streams: RSS ${d.rssAtDrainStartMiB.total} MiB at drain start (primary ${d.rssAtDrainStartMiB.primary}, worker ${d.rssAtDrainStartMiB.workers}), ${d.rssWhileDrainingMiB.median} MiB while draining (max ${d.rssWhileDrainingMiB.max}), CPU ${d.cpuWhileDrainingPercent} % of a core; ${d.cutWhileDraining} streams cut; ${d.oldGenerationExited && d.exitAfterLastCloseMs !== null ? `exited ${d.exitAfterLastCloseMs} ms after the last stream closed` : "did NOT exit after its streams closed"}`,
  ];
}

/** `count`: the idle connections asked of every target (what the open-file limit allowed). */
export function idleRows(
  samples: ReadonlyMap<string, readonly IdleSample[]>,
  count?: number,
): Row[] {
  const base = [...samples.entries()].map(([target, list]): Row => {
    const bytes = list.map((s) => s.bytesPerConn);
    return {
      scenario: "g",
      target,
      throughput: null,
      cpuUsPerOp: null,
      p50Us: null,
      p99Us: null,
      bytesPerConn: num(median(bytes)),
      ratioToHaproxy: null,
      ratioToDirect: null,
      title: `${count ?? list[0]?.connections ?? 0} idle terminated connections: RSS delta per connection`,
      ...(count === undefined ? {} : { idleConnections: count }),
      unit: "conn",
      runs: list.length,
      spread: spreadOf(bytes),
      throughputSpread: null,
      ...(list.some((s) => s.heapPerConn !== undefined)
        ? {
            heapBytesPerConn: num(median(list.map((s) => s.heapPerConn ?? Number.NaN))),
            heapTotalBytesPerConn: num(median(list.map((s) => s.heapTotalPerConn ?? Number.NaN))),
            outsideHeapBytesPerConn: num(
              median(list.map((s) => s.outsideHeapPerConn ?? Number.NaN)),
            ),
          }
        : {}),
    };
  });
  const haproxy = base.find((r) => r.target === "haproxy");
  return base.map((r) => ({ ...r, ratioToHaproxy: ratio(r.bytesPerConn, haproxy?.bytesPerConn) }));
}

export function routeRow(routeSelect: readonly number[], routeOnly: readonly number[]): Row {
  return {
    scenario: "h",
    target: "ours",
    throughput: num(median(routeSelect)),
    cpuUsPerOp: num(1e6 / median(routeSelect)),
    p50Us: null,
    p99Us: null,
    bytesPerConn: null,
    ratioToHaproxy: null,
    ratioToDirect: null,
    title: "route lookup alone: SNI label → instance set (route + select)",
    unit: "lookup",
    runs: routeSelect.length,
    spread: spreadOf(routeSelect),
    throughputSpread: spreadOf(routeSelect),
    routeOnlyOpsPerSec: median(routeOnly),
  };
}

export interface Goal {
  readonly text: string;
  readonly value: number | null;
  readonly limit: string;
  readonly met: boolean | null;
}

export function goals(rows: readonly Row[]): Goal[] {
  const get = (s: ScenarioId, t: string): Row | undefined =>
    rows.find((r) => r.scenario === s && r.target === t);
  const le = (
    text: string,
    value: number | null | undefined,
    max: number,
    limit: string,
  ): Goal => ({
    text,
    value: value ?? null,
    limit,
    met: value == null ? null : value <= max,
  });
  const f = get("f", "ours");
  const fNginx = get("f", "nginx");
  const h = get("h", "ours");
  return [
    le("(a) CPU per full handshake vs HAProxy", get("a", "ours")?.ratioToHaproxy, 1.0, "≤ 1.0×"),
    le("(b) CPU per resumed handshake vs HAProxy", get("b", "ours")?.ratioToHaproxy, 1.0, "≤ 1.0×"),
    le(
      "(c) CPU per keep-alive request vs HAProxy",
      get("c", "ours")?.ratioToHaproxy,
      0.8,
      "≤ 0.8×",
    ),
    le(
      "(d) passthrough CPU per GB vs HAProxy mode tcp",
      get("d", "ours")?.ratioToHaproxy,
      1.0,
      "≤ 1.0×",
    ),
    le(
      "(f) added p50 latency vs nginx's (µs)",
      f?.addedP50Us == null || fNginx?.addedP50Us == null ? null : f.addedP50Us - fNginx.addedP50Us,
      0,
      "≤ +0 µs",
    ),
    le(
      "(g) memory per idle terminated connection (KiB)",
      get("g", "ours")?.bytesPerConn == null
        ? null
        : (get("g", "ours")?.bytesPerConn as number) / 1024,
      16,
      "≤ 16 KiB",
    ),
    {
      text: "(h) route lookups per second (millions)",
      value: h?.throughput == null ? null : h.throughput / 1e6,
      limit: "≥ 2.0 M/s",
      met: h?.throughput == null ? null : h.throughput >= 2e6,
    },
  ];
}
