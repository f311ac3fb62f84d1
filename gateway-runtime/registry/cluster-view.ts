/**
 * A host's view of the registrations every host shares through etcd: the `RegistryState` the
 * registry rules run against, plus the etcd revision each instance's record was written at.
 * Changes arrive from three places in any order: the watch (in revision order), this host's
 * own committed transactions, and reads done to resolve a conflict. Each change is applied only
 * if it is newer than what the view holds for that instance, so a late, older one never undoes
 * a newer one.
 */
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import type { IpPlan } from "./allocate.js";
import { RegistryState } from "./state.js";
import type { InstanceRecord, StoreChange } from "./store.js";

/** One instance's record as etcd held it at `revision`; no `json` = deleted. */
export interface ViewEntry {
  readonly id: string;
  readonly revision: number;
  readonly json?: string;
}

export type ViewChange = StoreChange;

export class ClusterView {
  #state: RegistryState;
  readonly #log: Logger | undefined;
  /** Instance id → revision of the record the view holds. */
  readonly #revision = new Map<string, number>();
  /**
   * Deleted id → revision of the deletion, so an older record read before the deletion is not
   * brought back. Dropped once the watch is past it (see `#watched`).
   */
  readonly #deleted = new Map<string, number>();
  /** The watch has delivered every change up to this revision. */
  #watched = 0;
  readonly #listeners = new Set<(change: ViewChange) => void>();

  constructor(plan: IpPlan, log?: Logger) {
    this.#state = RegistryState.empty(plan);
    this.#log = log;
  }

  get state(): RegistryState {
    return this.#state;
  }

  /** The revision of the record the view holds for `id` (0: none). */
  revisionOf(id: string): number {
    return this.#revision.get(id) ?? 0;
  }

  get watched(): number {
    return this.#watched;
  }

  onChange(listener: (change: ViewChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Events of the watch, in revision order, up to `revision`. */
  applyWatch(entries: readonly ViewEntry[], revision: number): void {
    this.#apply(entries);
    this.#watched = Math.max(this.#watched, revision);
    for (const [id, rev] of this.#deleted) if (rev <= this.#watched) this.#deleted.delete(id);
  }

  /**
   * What etcd held at `revision` for some instances (a commit of this host, a read). Skipped
   * when the watch is already there: it delivered the same or newer. `complete`: `entries` is
   * every instance (a reload), so the view drops those it holds that are not among them.
   */
  applyRead(entries: readonly ViewEntry[], revision: number, complete = false): void {
    if (revision <= this.#watched && !complete) return;
    const all = [...entries];
    if (complete) {
      const present = new Set(entries.map((e) => e.id));
      for (const r of this.#state.list())
        if (!present.has(r.instanceId)) all.push({ id: r.instanceId, revision });
    }
    this.#apply(all);
  }

  #apply(entries: readonly ViewEntry[]): void {
    const next = this.#state.clone();
    const upserted = new Map<string, InstanceRecord>();
    const removed = new Set<string>();
    for (const entry of entries) {
      const known = this.#revision.get(entry.id) ?? this.#deleted.get(entry.id) ?? 0;
      if (entry.revision <= known) continue;
      if (entry.json === undefined) {
        if (next.remove(entry.id)) removed.add(entry.id);
        upserted.delete(entry.id);
        this.#revision.delete(entry.id);
        this.#deleted.set(entry.id, entry.revision);
        continue;
      }
      this.#deleted.delete(entry.id);
      this.#revision.set(entry.id, entry.revision);
      try {
        for (const evicted of next.put(JSON.parse(entry.json), `etcd record ${entry.id}`)) {
          // Its newer record (another address or key) is still to come; until then it is gone.
          this.#revision.delete(evicted);
          upserted.delete(evicted);
          removed.add(evicted);
        }
        const record = next.get(entry.id) as InstanceRecord;
        upserted.set(entry.id, record);
        removed.delete(entry.id);
      } catch (error) {
        // A record this host cannot use (another host's config differs, a hand edit): left out
        // of routing here, and loudly. Addresses stay unique: etcd, not this view, decides them.
        const err =
          error instanceof GatewayError
            ? error
            : new GatewayError("E_STATE_CORRUPT", String(error));
        this.#log?.error({ err, instanceId: entry.id }, "ignoring an etcd registration record");
        if (next.remove(entry.id)) removed.add(entry.id);
        upserted.delete(entry.id);
      }
    }
    if (upserted.size === 0 && removed.size === 0) return;
    this.#state = next;
    const change = { upserted: [...upserted.values()], removed: [...removed] };
    for (const listener of this.#listeners) listener(change);
  }
}
