import { type Instance, type InstanceDirectory, isHealthy } from "../registry/index.js";

export type Balance = "least_conn" | "random" | "round_robin" | "ip_hash";

/**
 * How long an instance whose connect failed goes to the back of its app's candidates, as
 * nginx's `fail_timeout` (10 s by default) does; a successful connect ends it sooner.
 */
export const FAILURE_PENALTY_MS = 10_000;

/**
 * Failure entries kept before the stale ones (expired penalties, counts of instances removed
 * meanwhile) are swept; after a sweep, the next one waits for twice what is left, so sweeping
 * stays linear in the failures reported.
 */
const FAILURES_SWEEP_AT = 1_024;

export interface SelectorOptions {
  /** Candidates raced per connection (`connect_top_n`). */
  readonly topN: number;
  /** How long an id's healthy-instance list is reused (`timeouts.cache_top_n`). */
  readonly cacheMs: number;
  /** Healthy = latest WireGuard handshake younger than this. */
  readonly healthyAgeMs: number;
  readonly balance: Balance;
  readonly now?: () => number;
  readonly random?: () => number;
}

export type Selection =
  | { readonly kind: "unknown" }
  | { readonly kind: "unhealthy"; readonly appId: string }
  | { readonly kind: "ok"; readonly appId: string; readonly candidates: readonly Instance[] };

interface Cached {
  readonly version: number;
  readonly until: number;
  readonly appId: string;
  readonly healthy: readonly Instance[];
}

/**
 * Chooses which instances a connection tries. An id names an instance first, else an app.
 * A named instance is tried whatever its health (the user asked for it); an app's instances
 * only while healthy and in rotation (an operator's `SetInstanceReady`: no fail-open to an
 * instance taken out, as dstack#1078 decided; an app with all its instances out answers as
 * one with none healthy). The healthy list is cached per id; the order is chosen per connection.
 * An instance reported `failed` goes behind every other healthy one for `FAILURE_PENALTY_MS`:
 * least_conn would otherwise put a dead instance (no open connections) first until its
 * WireGuard handshake ages out.
 */
export class InstanceSelector {
  readonly #directory: InstanceDirectory;
  readonly #opts: SelectorOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #cache = new Map<string, Cached>();
  readonly #active = new Map<string, number>();
  readonly #turn = new Map<string, number>();
  /** Instance id → until when it goes last. */
  readonly #failedUntil = new Map<string, number>();
  /** Instance id → failed connects so far (metrics). */
  readonly #failures = new Map<string, number>();
  #sweepAt = FAILURES_SWEEP_AT;

  constructor(directory: InstanceDirectory, opts: SelectorOptions) {
    this.#directory = directory;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
  }

  select(id: string, clientIp: string): Selection {
    const named = this.#directory.instance(id);
    if (named) return { kind: "ok", appId: named.appId, candidates: [named] };
    const cached = this.#healthy(id);
    if (!cached) return { kind: "unknown" };
    if (cached.healthy.length === 0) return { kind: "unhealthy", appId: cached.appId };
    return {
      kind: "ok",
      appId: cached.appId,
      candidates: this.#candidates(cached.healthy, id, clientIp),
    };
  }

  /** A connect to the instance failed (or it did not answer while another did). */
  failed(instanceId: string): void {
    const now = this.#now();
    this.#failedUntil.set(instanceId, now + FAILURE_PENALTY_MS);
    this.#failures.set(instanceId, (this.#failures.get(instanceId) ?? 0) + 1);
    if (this.#failures.size >= this.#sweepAt) this.#sweep(now);
  }

  #sweep(now: number): void {
    for (const [id, until] of this.#failedUntil) if (until <= now) this.#failedUntil.delete(id);
    for (const id of this.#failures.keys()) {
      if (!this.#directory.instance(id)) this.#failures.delete(id);
    }
    this.#sweepAt = Math.max(FAILURES_SWEEP_AT, 2 * this.#failures.size);
  }

  /** Failed connects per instance since start (instances with none are absent). */
  connectFailures(): ReadonlyMap<string, number> {
    return this.#failures;
  }

  /**
   * Counts an open connection to an instance (least_conn); call `release` when it ends. The
   * connect succeeded, so an earlier failure no longer counts.
   */
  acquire(instanceId: string): void {
    if (this.#failedUntil.size > 0) this.#failedUntil.delete(instanceId);
    this.#active.set(instanceId, (this.#active.get(instanceId) ?? 0) + 1);
  }

  release(instanceId: string): void {
    const n = (this.#active.get(instanceId) ?? 0) - 1;
    if (n > 0) this.#active.set(instanceId, n);
    else this.#active.delete(instanceId);
  }

  activeConnections(instanceId: string): number {
    return this.#active.get(instanceId) ?? 0;
  }

  /** Open connections per instance (instances with none are absent). */
  allActive(): ReadonlyMap<string, number> {
    return this.#active;
  }

  #healthy(appId: string): Cached | undefined {
    const now = this.#now();
    const version = this.#directory.version;
    const hit = this.#cache.get(appId);
    if (hit && hit.version === version && hit.until > now) return hit;
    const all = this.#directory.appInstances(appId);
    if (all.length === 0) {
      this.#cache.delete(appId);
      return undefined;
    }
    const healthy = all
      .filter((i) => !i.outOfRotation && isHealthy(i, now, this.#opts.healthyAgeMs))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    const entry = { version, until: now + this.#opts.cacheMs, appId, healthy };
    this.#cache.set(appId, entry);
    return entry;
  }

  /** The top N in the balance's order, instances that failed lately after all the others. */
  #candidates(healthy: readonly Instance[], appId: string, clientIp: string): Instance[] {
    const topN = this.#opts.topN;
    if (this.#failedUntil.size === 0) return this.#order(healthy, appId, clientIp, topN);
    const now = this.#now();
    const fresh: Instance[] = [];
    const failed: Instance[] = [];
    for (const i of healthy) (this.#hasFailed(i.id, now) ? failed : fresh).push(i);
    if (failed.length === 0) return this.#order(healthy, appId, clientIp, topN);
    const first = this.#order(fresh, appId, clientIp, topN);
    if (first.length >= topN) return first;
    return first.concat(this.#order(failed, appId, clientIp, topN - first.length));
  }

  #hasFailed(instanceId: string, now: number): boolean {
    const until = this.#failedUntil.get(instanceId);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#failedUntil.delete(instanceId);
    return false;
  }

  #order(healthy: readonly Instance[], appId: string, clientIp: string, topN: number): Instance[] {
    const n = Math.min(topN, healthy.length);
    if (n === 0) return [];
    switch (this.#opts.balance) {
      case "round_robin":
        return rotate(healthy, this.#nextTurn(appId), n);
      case "ip_hash":
        return rotate(healthy, hash(clientIp), n);
      case "random":
        return shuffle([...healthy], this.#random).slice(0, n);
      case "least_conn":
        return this.#fewestFirst(healthy, n);
    }
  }

  /**
   * The `n` instances with the fewest open connections, fewest first; ties broken uniformly at
   * random (reservoir sampling over the tied ones), as a shuffle followed by a stable sort
   * would, without its tuples and sorts. O(n × healthy.length), called per connection; it
   * allocates the result and one array of counts.
   */
  #fewestFirst(healthy: readonly Instance[], n: number): Instance[] {
    if (healthy.length === 1) return [healthy[0] as Instance];
    const rest = healthy.slice();
    const counts: number[] = [];
    for (const i of rest) counts.push(this.#active.get(i.id) ?? 0);
    for (let p = 0; p < n; p++) {
      let best = p;
      let ties = 1;
      for (let k = p + 1; k < rest.length; k++) {
        const c = counts[k] as number;
        const b = counts[best] as number;
        if (c < b) {
          best = k;
          ties = 1;
        } else if (c === b && this.#random() * ++ties < 1) {
          best = k;
        }
      }
      swap(rest, p, best);
      swap(counts, p, best);
    }
    rest.length = n;
    return rest;
  }

  #nextTurn(appId: string): number {
    const turn = this.#turn.get(appId) ?? 0;
    this.#turn.set(appId, (turn + 1) % 1_000_000_007);
    return turn;
  }
}

function rotate<T>(list: readonly T[], start: number, n: number): T[] {
  return Array.from({ length: n }, (_, k) => list[(start + k) % list.length] as T);
}

function shuffle<T>(list: T[], random: () => number): T[] {
  for (let i = list.length - 1; i > 0; i--) swap(list, i, Math.floor(random() * (i + 1)));
  return list;
}

function swap<T>(list: T[], i: number, j: number): void {
  const t = list[i] as T;
  list[i] = list[j] as T;
  list[j] = t;
}

/** FNV-1a: a stable spread of client addresses over instances. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
