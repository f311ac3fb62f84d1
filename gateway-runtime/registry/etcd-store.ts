/**
 * Registrations shared by the gateway hosts of a region through etcd. Key layout under
 * `prefix`: `instances/<id>` (the record, JSON), `ips/<ip>` and `keys/<public key, base64url>`
 * (the instance id holding them). An address or key is taken only by a transaction that checks
 * it does not exist yet (create revision 0) and writes the record with it, and a record changes
 * only if it is still the one this host read (mod revision): two hosts never hand out one
 * address or admit one key twice. Reads come from the view (`ClusterView`), which a watch keeps
 * current, so routing keeps working while etcd is unreachable; writes then fail with
 * `E_CLUSTER_UNAVAILABLE`.
 */
import { once } from "node:events";
import type { Etcd3, IKeyValue, IRequestOp, ITxnResponse, Watcher } from "etcd3";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import type { IpPlan } from "./allocate.js";
import { ClusterView, type ViewChange, type ViewEntry } from "./cluster-view.js";
import { applyBatch, GroupCommit, type Operation, settle } from "./group-commit.js";
import type { InstanceRecord, PortPolicy, RegisterRequest, RegistrationStore } from "./store.js";
import { EtcdTxn, type KeySpace, keySpace } from "./etcd-txn.js";

export interface EtcdStoreOptions {
  readonly client: Etcd3;
  /** Key prefix of this region, e.g. `/cvm-gateway/us`. */
  readonly prefix: string;
  readonly plan: IpPlan;
  /**
   * Bound on starting the watch and on cancelling it, ms. Requests are bounded by the client
   * (etcd-client.ts: per attempt, so an attempt on a silent member leaves time for another).
   */
  readonly timeoutMs: number;
  /** @default Date.now */
  readonly now?: () => number;
  readonly log?: Logger;
  /** `close()` closes the client too. @default false */
  readonly ownsClient?: boolean;
  /**
   * A client of its own for the watch, replaced when the watch has not come back within
   * `2 * timeoutMs + 2 s` of losing its stream. etcd3 reconnects a lost watch to a member
   * picked at random, and gRPC waits without a bound for a member that accepts the connection
   * but never answers (a hung process): a new client picks again. Without it the watch uses
   * `client` and waits.
   */
  readonly connectWatch?: () => Promise<Etcd3>;
}

/** Conflicting transactions are retried after reading what changed; this bounds the retries. */
const MAX_ATTEMPTS = 8;
/**
 * etcd refuses a transaction with more than 128 (`--max-txn-ops`) compares, success operations
 * or failure reads; a registration takes 3 compares and reads (record, address, key) and up to
 * 5 writes (its record, address and key; the old address and key of a re-registration): 25 fit.
 * A host commits one transaction at a time, so this bounds its registrations per round trip.
 */
const MAX_BATCH = 25;

export class EtcdRegistrationStore implements RegistrationStore {
  readonly #o: EtcdStoreOptions;
  readonly #keys: KeySpace;
  readonly #view: ClusterView;
  readonly #now: () => number;
  readonly #group: GroupCommit;
  #list: readonly InstanceRecord[] | undefined;
  #watcher: Watcher | undefined;
  /** From `connectWatch`; closed with the store or when the watch is stuck. */
  #watchClient: Etcd3 | undefined;
  #closed = false;

  private constructor(options: EtcdStoreOptions) {
    this.#o = options;
    this.#keys = keySpace(options.prefix);
    this.#view = new ClusterView(options.plan, options.log);
    this.#view.onChange(() => {
      this.#list = undefined;
    });
    this.#now = options.now ?? Date.now;
    this.#group = new GroupCommit(
      (batch) => this.#commit(batch),
      () => new GatewayError("E_STATE_CLOSED", `registration store ${options.prefix} is closed`),
      MAX_BATCH,
    );
  }

  /** Loads every registration, then watches for changes; fails if etcd cannot be read. */
  static async open(options: EtcdStoreOptions): Promise<EtcdRegistrationStore> {
    const store = new EtcdRegistrationStore(options);
    try {
      await store.#reload();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  register(req: RegisterRequest): Promise<InstanceRecord> {
    return this.#group.register(req);
  }

  remove(instanceId: string): Promise<boolean> {
    return this.#group.remove(instanceId);
  }

  setPortPolicyOverride(instanceId: string, policy: PortPolicy | undefined) {
    return this.#group.setPortPolicyOverride(instanceId, policy);
  }

  setOutOfRotation(instanceId: string, out: boolean): Promise<InstanceRecord> {
    return this.#group.setOutOfRotation(instanceId, out);
  }

  list(): readonly InstanceRecord[] {
    this.#list ??= Object.freeze(this.#view.state.list());
    return this.#list;
  }

  get(instanceId: string): InstanceRecord | undefined {
    return this.#view.state.get(instanceId);
  }

  /**
   * Writes `records` as they are, addresses kept, into a region that has no registration yet:
   * how a host that kept its state in a file brings it along when its region becomes a cluster.
   * Each instance, address and key must still be free in etcd (another host may have started
   * registering meanwhile); a conflict writes nothing more and is an `E_CLUSTER_CONFLICT`.
   */
  async adopt(records: readonly InstanceRecord[]): Promise<void> {
    if (this.#view.state.list().length > 0)
      throw new GatewayError("E_CLUSTER_CONFLICT", "the region already has registrations");
    for (let k = 0; k < records.length; k += MAX_BATCH) {
      const base = this.#view.state;
      const draft = base.clone();
      for (const record of records.slice(k, k + MAX_BATCH)) draft.put(record, "adopted record");
      const txn = EtcdTxn.diff(this.#keys, base, draft, (id) => this.#view.revisionOf(id));
      let res: ITxnResponse;
      try {
        res = await this.#o.client.kv.txn(txn.request());
      } catch (error) {
        throw this.#unavailable(error);
      }
      if (!res.succeeded)
        throw new GatewayError(
          "E_CLUSTER_CONFLICT",
          "another gateway host registered an instance, address or key being brought into etcd",
        );
      const revision = Number(res.header.revision);
      this.#view.applyRead(txn.committed(revision), revision);
    }
  }

  /** Every change of the shared set, whichever host made it. */
  subscribe(listener: (change: ViewChange) => void): () => void {
    return this.#view.onChange(listener);
  }

  /** The etcd revision the watch has delivered up to. */
  get revision(): number {
    return this.#view.watched;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#group.close();
    await this.#stopWatch();
    this.#watchClient?.close();
    if (this.#o.ownsClient) this.#o.client.close();
  }

  #unavailable(cause: unknown): GatewayError {
    if (cause instanceof GatewayError) return cause;
    return new GatewayError(
      "E_CLUSTER_UNAVAILABLE",
      `etcd did not answer (${(cause as Error).message ?? String(cause)}); registrations wait for its quorum`,
      { cause },
    );
  }

  /** Reads every record, makes it the view, and (re)starts the watch just after it. */
  async #reload(): Promise<void> {
    let res: Awaited<ReturnType<Etcd3["kv"]["range"]>>;
    try {
      res = await this.#o.client.kv.range({
        key: this.#keys.instances,
        range_end: this.#keys.instancesEnd,
      });
    } catch (error) {
      throw this.#unavailable(error);
    }
    const revision = Number(res.header.revision);
    this.#view.applyRead(
      res.kvs.map((kv) => this.#entry(kv)),
      revision,
      true,
    );
    this.#view.applyWatch([], revision);
    await this.#watch(revision);
  }

  async #watch(after: number): Promise<void> {
    await this.#stopWatch();
    if (this.#closed) return;
    const connect = this.#o.connectWatch;
    if (connect) this.#watchClient ??= await connect();
    const watcher = (this.#watchClient ?? this.#o.client)
      .watch()
      .prefix(this.#keys.instances.toString())
      .startRevision(String(after + 1))
      .watcher();
    this.#watcher = watcher;
    const log = this.#o.log;
    watcher.on("data", (res) => {
      const entries = res.events.map((e): ViewEntry => {
        const entry = this.#entry(e.kv);
        return e.type === "Delete" ? { id: entry.id, revision: entry.revision } : entry;
      });
      const last = entries.at(-1)?.revision ?? 0;
      this.#view.applyWatch(entries, last);
    });
    // Logged once per outage: the client tries again every couple of seconds meanwhile.
    let lost = false;
    let stuck: NodeJS.Timeout | undefined;
    watcher.on("disconnected", (err) => {
      if (!lost) log?.warn({ err }, "etcd watch lost; routing goes on from this host's view");
      lost = true;
      if (connect && stuck === undefined) {
        stuck = setTimeout(() => this.#unstick(watcher), 2 * this.#o.timeoutMs + 2000).unref();
      }
    });
    watcher.on("connected", () => {
      if (lost) log?.info({ from: watcher.lastRevision() }, "etcd watch resumed");
      lost = false;
      clearTimeout(stuck);
      stuck = undefined;
    });
    // The watch was cancelled by etcd, e.g. because the revision to resume from was compacted
    // away: read everything again and watch from there.
    watcher.on("error", (err) => {
      if (this.#closed || this.#watcher !== watcher) return;
      log?.warn({ err }, "etcd watch cancelled; reloading the registrations");
      // etcd ended this watch itself: cancelling it again would wait for an answer that never
      // comes.
      this.#watcher = undefined;
      this.#reloadUntilDone();
    });
    try {
      // Catch up before serving: the watch runs before open() or a reload returns.
      await once(watcher, "connected", { signal: AbortSignal.timeout(this.#o.timeoutMs) });
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /** The watch did not come back in time: drop its client and watch again on a new one. */
  #unstick(watcher: Watcher): void {
    if (this.#closed || this.#watcher !== watcher) return;
    this.#o.log?.warn("etcd watch did not reconnect in time; watching on a new connection");
    watcher.removeAllListeners("data");
    this.#watcher = undefined;
    this.#watchClient?.close();
    this.#watchClient = undefined;
    this.#reloadUntilDone();
  }

  /** Cancels the watch; bounded, since a cancel waits for etcd to confirm it. */
  async #stopWatch(): Promise<void> {
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (!watcher) return;
    watcher.removeAllListeners("data");
    const bound = new Promise((resolve) => setTimeout(resolve, this.#o.timeoutMs).unref());
    await Promise.race([watcher.cancel().catch(() => undefined), bound]);
  }

  #reloadUntilDone(): void {
    this.#reload().catch((err: unknown) => {
      if (this.#closed) return;
      this.#o.log?.warn({ err }, "reloading from etcd failed; trying again");
      setTimeout(() => this.#reloadUntilDone(), 1000).unref();
    });
  }

  #entry(kv: IKeyValue): ViewEntry {
    const id = kv.key.subarray(this.#keys.instances.length).toString();
    return { id, revision: Number(kv.mod_revision), json: kv.value.toString() };
  }

  async #commit(batch: Operation[]): Promise<void> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const base = this.#view.state;
      const draft = base.clone();
      const outcomes = applyBatch(batch, draft, this.#now());
      const txn = EtcdTxn.diff(this.#keys, base, draft, (id) => this.#view.revisionOf(id));
      if (txn.empty) return settle(batch, outcomes);
      if (txn.duplicateKeys && batch.length > 1) {
        // One key released and taken in the same batch: etcd allows one change per key per
        // transaction, so these operations go one by one.
        for (const op of batch) await this.#commit([op]);
        return;
      }
      let res: ITxnResponse;
      try {
        res = await this.#o.client.kv.txn(txn.request());
      } catch (error) {
        const err = this.#unavailable(error);
        for (const op of batch) op.reject(err);
        return;
      }
      const revision = Number(res.header.revision);
      if (res.succeeded) {
        this.#view.applyRead(txn.committed(revision), revision);
        return settle(batch, outcomes);
      }
      try {
        await this.#refresh(txn.conflicts(res));
      } catch (error) {
        const err = this.#unavailable(error);
        for (const op of batch) op.reject(err);
        return;
      }
    }
    const error = new GatewayError(
      "E_CLUSTER_CONFLICT",
      `registration kept conflicting with other gateway hosts (${MAX_ATTEMPTS} attempts)`,
    );
    for (const op of batch) op.reject(error);
  }

  /** Reads the records a failed transaction conflicted with into the view. */
  async #refresh(conflicts: { entries: ViewEntry[]; holders: string[]; revision: number }) {
    this.#view.applyRead(conflicts.entries, conflicts.revision);
    if (conflicts.holders.length === 0) return;
    const ops: IRequestOp[] = conflicts.holders.map((id) => ({
      request_range: { key: this.#keys.instance(id) },
    }));
    const res = await this.#o.client.kv.txn({ success: ops });
    const revision = Number(res.header.revision);
    const entries = res.responses.map((r, k): ViewEntry => {
      const kv = r.response_range.kvs[0];
      return kv ? this.#entry(kv) : { id: conflicts.holders[k] as string, revision };
    });
    this.#view.applyRead(entries, revision);
  }
}
