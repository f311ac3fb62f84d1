/**
 * Scenario (i)'s figures (`engines.ts`): per engine, the time from a registration's answer
 * until a connection to its app reaches it, and the CPU a registration costs; as result rows
 * for the run's JSON and table, and as summary lines.
 */
import type { Row } from "../lib/report.js";

/** What one engine's part measured. */
export interface EngineResult {
  /** The bench's target name: "ours" (node engine) or "ours-haproxy". */
  readonly target: string;
  readonly engine: "node" | "haproxy";
  /** Per probed registration, ms from its answer until `<app-id>-<port>` reached it; null: not within the bound. */
  readonly appRoutableMs: readonly (number | null)[];
  /** The same for `<instance-id>-<port>`, which needs no health (no WireGuard handshake). */
  readonly instanceRoutableMs: readonly (number | null)[];
  /** Registrations in the CPU part. */
  readonly registrations: number;
  /** CPU of the runtime's processes (and the commands they ran) over that part, less idle. */
  readonly runtimeCpuMs: number;
  /** HAProxy's master and workers over the same part, less idle; null for the node engine. */
  readonly haproxyCpuMs: number | null;
  /** What the same processes spent idle over a window as long as the part (subtracted above). */
  readonly idleCpuMs: number;
  readonly windowMs: number;
}

export interface EnginesResult {
  readonly date: string;
  readonly handshakePollInterval: string;
  readonly boundMs: number;
  readonly loadAverageStart: number;
  readonly engines: readonly EngineResult[];
}

export const TITLE =
  "control plane per engine: a registration until its app's first routed connection; runtime CPU per registration";

const finite = (xs: readonly (number | null)[]): number[] =>
  xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);

/** The q-quantile of the values within the bound; a missed one counts as above every other. */
function quantileOrMissed(xs: readonly (number | null)[], q: number): number | null {
  const ok = finite(xs);
  const k = Math.min(xs.length - 1, Math.floor(q * xs.length));
  return k < ok.length ? (ok[k] ?? null) : null;
}

export function engineRows(r: EnginesResult): Row[] {
  return r.engines.map((e): Row => {
    const routable = finite(e.appRoutableMs);
    const missed = e.appRoutableMs.length - routable.length;
    const us = (ms: number | null) => (ms === null ? null : ms * 1000);
    return {
      scenario: "i",
      target: e.target,
      throughput: null,
      cpuUsPerOp: e.registrations > 0 ? (e.runtimeCpuMs * 1000) / e.registrations : null,
      p50Us: us(quantileOrMissed(e.appRoutableMs, 0.5)),
      p99Us: us(quantileOrMissed(e.appRoutableMs, 0.99)),
      bytesPerConn: null,
      ratioToHaproxy: null,
      ratioToDirect: null,
      title: TITLE,
      unit: "registration",
      runs: 1,
      spread: null,
      throughputSpread: null,
      errors: missed,
      haproxyCpuUsPerRegistration:
        e.haproxyCpuMs === null || e.registrations === 0
          ? null
          : (e.haproxyCpuMs * 1000) / e.registrations,
      instanceRoutableP50Us: us(quantileOrMissed(e.instanceRoutableMs, 0.5)),
    };
  });
}

const ms = (x: number | null | undefined, digits = 0): string =>
  x === null || x === undefined || !Number.isFinite(x) ? "-" : `${x.toFixed(digits)} ms`;

export function engineLines(r: EnginesResult): string[] {
  return [
    ...r.engines.map((e) => {
      const app = finite(e.appRoutableMs);
      const missed = e.appRoutableMs.length - app.length;
      const per = (cpu: number) => ms(cpu / e.registrations, 1);
      return (
        `${e.engine} engine: routable by app after p50 ${ms(quantileOrMissed(e.appRoutableMs, 0.5))}, max ${ms(app.at(-1))}` +
        ` (by instance name p50 ${ms(quantileOrMissed(e.instanceRoutableMs, 0.5))}; ${e.appRoutableMs.length} registrations` +
        `${missed > 0 ? `, ${missed} not within ${r.boundMs / 1000} s` : ""}); CPU per registration: runtime ${per(e.runtimeCpuMs)}` +
        `${e.haproxyCpuMs === null ? "" : `, HAProxy ${per(e.haproxyCpuMs)}`} (${e.registrations} registrations, idle ${per(e.idleCpuMs)} subtracted)`
      );
    }),
    `health poll every ${r.handshakePollInterval} (an app is routable once its handshake is polled); load average ${r.loadAverageStart.toFixed(1)} at the start`,
  ];
}
