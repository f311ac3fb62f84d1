/**
 * The etcd transaction that turns one view of the registrations into another: for every
 * instance that changed, the checks that make it safe (the record is still the one read, a new
 * address or key is still free) and the writes, plus the reads that tell a failed one why.
 */
import type { ICompare, IRequestOp, ITxnRequest, ITxnResponse } from "etcd3";
import type { ViewEntry } from "./cluster-view.js";
import type { RegistryState } from "./state.js";
import type { InstanceRecord } from "./store.js";

export interface KeySpace {
  /** `<prefix>/instances/`: the records. */
  readonly instances: Buffer;
  /** The end of the `instances/` range (its last byte plus one). */
  readonly instancesEnd: Buffer;
  instance(id: string): Buffer;
  ip(ip: string): Buffer;
  publicKey(key: string): Buffer;
}

export function keySpace(prefix: string): KeySpace {
  const root = prefix.replace(/\/+$/, "");
  const at = (path: string) => Buffer.from(`${root}/${path}`);
  const instances = at("instances/");
  const instancesEnd = Buffer.from(instances);
  instancesEnd[instancesEnd.length - 1] = (instancesEnd.at(-1) as number) + 1;
  return {
    instances,
    instancesEnd,
    instance: (id) => at(`instances/${id}`),
    ip: (ip) => at(`ips/${ip}`),
    // base64url: a standard base64 key has '/', which reads as a path in etcd tools.
    publicKey: (key) => at(`keys/${Buffer.from(key, "base64").toString("base64url")}`),
  };
}

type Check = { key: Buffer; kind: "instance" | "holder"; id: string; compare: ICompare };

export class EtcdTxn {
  readonly #checks: Check[] = [];
  readonly #writes: IRequestOp[] = [];
  readonly #written = new Set<string>();
  /** What the view holds after the transaction, minus the revision it commits at. */
  readonly #after: { id: string; record?: InstanceRecord }[] = [];
  duplicateKeys = false;

  private constructor(readonly keys: KeySpace) {}

  /** The transaction from `base` to `draft`; `revisionOf` gives each base record's revision. */
  static diff(
    keys: KeySpace,
    base: RegistryState,
    draft: RegistryState,
    revisionOf: (id: string) => number,
  ): EtcdTxn {
    const txn = new EtcdTxn(keys);
    for (const record of draft.list()) {
      const old = base.get(record.instanceId);
      if (old !== record) txn.#change(old, record, revisionOf(record.instanceId));
    }
    for (const old of base.list()) {
      if (draft.get(old.instanceId) === undefined)
        txn.#change(old, undefined, revisionOf(old.instanceId));
    }
    return txn;
  }

  get empty(): boolean {
    return this.#writes.length === 0;
  }

  #change(old: InstanceRecord | undefined, next: InstanceRecord | undefined, revision: number) {
    const id = (next ?? old)?.instanceId as string;
    const key = this.keys.instance(id);
    this.#checks.push({
      key,
      kind: "instance",
      id,
      compare: old
        ? { key, target: "Mod", result: "Equal", mod_revision: revision }
        : { key, target: "Create", result: "Equal", create_revision: 0 },
    });
    if (next) this.#put(key, JSON.stringify(next));
    else this.#delete(key);
    for (const [field, keyOf] of [
      ["ip", this.keys.ip],
      ["publicKey", this.keys.publicKey],
    ] as const) {
      const before = old?.[field];
      const after = next?.[field];
      if (before === after) continue;
      if (before !== undefined) this.#delete(keyOf(before));
      if (after !== undefined) {
        const taken = keyOf(after);
        this.#checks.push({
          key: taken,
          kind: "holder",
          id,
          compare: { key: taken, target: "Create", result: "Equal", create_revision: 0 },
        });
        this.#put(taken, id);
      }
    }
    this.#after.push(next ? { id, record: next } : { id });
  }

  #put(key: Buffer, value: string): void {
    this.#note(key);
    this.#writes.push({ request_put: { key, value: Buffer.from(value) } });
  }

  #delete(key: Buffer): void {
    this.#note(key);
    this.#writes.push({ request_delete_range: { key } });
  }

  #note(key: Buffer): void {
    const text = key.toString("latin1");
    if (this.#written.has(text)) this.duplicateKeys = true;
    this.#written.add(text);
  }

  request(): ITxnRequest {
    return {
      compare: this.#checks.map((c) => c.compare),
      success: this.#writes,
      failure: this.#checks.map((c) => ({ request_range: { key: c.key } })),
    };
  }

  /** The view entries of a transaction that committed at `revision`. */
  committed(revision: number): ViewEntry[] {
    return this.#after.map(({ id, record }) =>
      record ? { id, revision, json: JSON.stringify(record) } : { id, revision },
    );
  }

  /**
   * What a failed transaction read: the current records of the instances it changed, and the
   * instances now holding an address or key it wanted (their records are read next).
   */
  conflicts(res: ITxnResponse): { entries: ViewEntry[]; holders: string[]; revision: number } {
    const revision = Number(res.header.revision);
    const entries: ViewEntry[] = [];
    const holders = new Set<string>();
    this.#checks.forEach((check, k) => {
      const kv = res.responses[k]?.response_range.kvs[0];
      if (check.kind === "instance") {
        entries.push(
          kv
            ? { id: check.id, revision: Number(kv.mod_revision), json: kv.value.toString() }
            : { id: check.id, revision },
        );
      } else if (kv && kv.value.toString() !== check.id) {
        holders.add(kv.value.toString());
      }
    });
    for (const e of entries) holders.delete(e.id);
    return { entries, holders: [...holders], revision };
  }
}
