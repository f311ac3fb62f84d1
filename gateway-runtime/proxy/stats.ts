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
