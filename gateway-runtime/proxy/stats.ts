import { type MetricJson, ProxyTimings } from "./timings.js";

/** Connection counters per app and rejections by reason: the one place metrics will read. */
export interface AppCounters {
  active: number;
  total: number;
  bytesToBackend: number;
  bytesToClient: number;
  readonly rejected: Map<string, number>;
}

export class ProxyStats {
  readonly #apps = new Map<string, AppCounters>();
  readonly #rejected = new Map<string, number>();
  readonly #perIp = new Map<string, number>();
  /** Handshake and connect latencies (histograms). */
  readonly timings = new ProxyTimings();

  #app(appId: string): AppCounters {
    let counters = this.#apps.get(appId);
    if (!counters) {
      counters = { active: 0, total: 0, bytesToBackend: 0, bytesToClient: 0, rejected: new Map() };
      this.#apps.set(appId, counters);
    }
    return counters;
  }

  opened(appId: string): void {
    const c = this.#app(appId);
    c.active++;
    c.total++;
  }

  closed(appId: string, bytesToBackend: number, bytesToClient: number): void {
    const c = this.#app(appId);
    c.active--;
    c.bytesToBackend += bytesToBackend;
    c.bytesToClient += bytesToClient;
  }

  /** Counts a refused connection; `reason` is an error code such as E_ROUTE_UNKNOWN_APP. */
  rejected(reason: string, appId?: string): void {
    this.#rejected.set(reason, (this.#rejected.get(reason) ?? 0) + 1);
    if (appId !== undefined) {
      const r = this.#app(appId).rejected;
      r.set(reason, (r.get(reason) ?? 0) + 1);
    }
  }

  activeForApp(appId: string): number {
    return this.#apps.get(appId)?.active ?? 0;
  }

  /** Per-client-IP open connections, for `max_connections_per_ip`. */
  ipOpened(ip: string): number {
    const n = (this.#perIp.get(ip) ?? 0) + 1;
    this.#perIp.set(ip, n);
    return n;
  }

  ipClosed(ip: string): void {
    const n = (this.#perIp.get(ip) ?? 0) - 1;
    if (n > 0) this.#perIp.set(ip, n);
    else this.#perIp.delete(ip);
  }

  app(appId: string): Readonly<AppCounters> | undefined {
    return this.#apps.get(appId);
  }

  rejections(): ReadonlyMap<string, number> {
    return this.#rejected;
  }

  apps(): ReadonlyMap<string, Readonly<AppCounters>> {
    return this.#apps;
  }
}

/** One app's counters as plain data (what a proxy worker sends to the primary). */
export interface AppSnapshot {
  readonly active: number;
  readonly total: number;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  readonly rejected: Readonly<Record<string, number>>;
}

/** A data plane's counters at one moment, as plain data; `mergeSnapshots` sums several. */
export interface ProxySnapshot {
  readonly apps: Readonly<Record<string, AppSnapshot>>;
  /** Refusals by reason, over all apps and those refused before an app was known. */
  readonly rejected: Readonly<Record<string, number>>;
  /** Open connections per instance id. */
  readonly instances: Readonly<Record<string, number>>;
  /** Failed connects per instance id, counted since start (instances with none are absent). */
  readonly connectFailures: Readonly<Record<string, number>>;
  /** The certificate served, per data plane (workers may differ while a reload is under way). */
  readonly certificates: readonly { readonly serial: string; readonly notAfterMs: number }[];
  /** The histograms of `ProxyTimings`, per data plane (summed when rendered). */
  readonly timings: readonly MetricJson[];
}

export function snapshotOf(
  stats: ProxyStats,
  instances: {
    readonly open: ReadonlyMap<string, number>;
    readonly connectFailures: ReadonlyMap<string, number>;
  },
  certificate: { serial: string; notAfter: Date },
  timings: readonly MetricJson[] = [],
): ProxySnapshot {
  const apps: Record<string, AppSnapshot> = {};
  for (const [appId, c] of stats.apps()) {
    const { active, total, bytesToBackend, bytesToClient } = c;
    apps[appId] = {
      active,
      total,
      bytesToBackend,
      bytesToClient,
      rejected: Object.fromEntries(c.rejected),
    };
  }
  return {
    apps,
    rejected: Object.fromEntries(stats.rejections()),
    instances: Object.fromEntries(instances.open),
    connectFailures: Object.fromEntries(instances.connectFailures),
    certificates: [{ serial: certificate.serial, notAfterMs: certificate.notAfter.getTime() }],
    timings,
  };
}

function addInto(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
}

/**
 * Sums the counters of several data planes (proxy workers); keeps each one's certificate and
 * histograms (prom-client's aggregation sums those by bucket when they are rendered).
 */
export function mergeSnapshots(snapshots: readonly ProxySnapshot[]): ProxySnapshot {
  const apps: Record<string, AppSnapshot> = {};
  const rejected: Record<string, number> = {};
  const instances: Record<string, number> = {};
  const connectFailures: Record<string, number> = {};
  const certificates: ProxySnapshot["certificates"][number][] = [];
  for (const s of snapshots) {
    for (const [appId, a] of Object.entries(s.apps)) {
      const sum = apps[appId];
      const appRejected = { ...sum?.rejected };
      addInto(appRejected, a.rejected);
      apps[appId] = {
        active: (sum?.active ?? 0) + a.active,
        total: (sum?.total ?? 0) + a.total,
        bytesToBackend: (sum?.bytesToBackend ?? 0) + a.bytesToBackend,
        bytesToClient: (sum?.bytesToClient ?? 0) + a.bytesToClient,
        rejected: appRejected,
      };
    }
    addInto(rejected, s.rejected);
    addInto(instances, s.instances);
    addInto(connectFailures, s.connectFailures);
    certificates.push(...s.certificates);
  }
  const timings = snapshots.flatMap((s) => s.timings);
  return { apps, rejected, instances, connectFailures, certificates, timings };
}
