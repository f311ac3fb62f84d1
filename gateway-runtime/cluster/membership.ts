/**
 * This host as one node of its region (key layout in node.ts): it writes its record under a
 * lease it keeps alive, follows every host's record and operator status, reports the handshakes
 * it sees, and competes for the recycler key. A host that dies stops renewing its lease, and its
 * record, handshake report and recycler key vanish with it within the TTL. A lease lost while
 * the host lives (etcd away longer than the TTL) is granted again and everything rewritten.
 */
import type { Etcd3, Lease } from "etcd3";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import { decodeHandshakes, encodeHandshakes, type HandshakeReport } from "./handshakes.js";
import { PrefixMirror } from "./mirror.js";
import {
  findNode,
  type NodeRecord,
  type NodeStatus,
  type NodeView,
  parseNodeRecord,
  parseNodeStatus,
} from "./node.js";

/** A dead host leaves the region's lists this long after its last renewal at most. */
export const NODE_TTL_S = 6;

export interface MembershipOptions {
  readonly client: Etcd3;
  /** `core.cluster.prefix`. */
  readonly prefix: string;
  readonly self: NodeRecord;
  /** @default NODE_TTL_S */
  readonly ttlS?: number;
  /** Bound on starting a watch, ms; requests are bounded by the client. */
  readonly timeoutMs: number;
  /** `close()` closes the client too. @default false */
  readonly ownsClient?: boolean;
  /** @default Date.now */
  readonly now?: () => number;
  readonly log?: Logger;
}

export class NodeMembership {
  readonly #o: MembershipOptions;
  readonly #root: string;
  readonly #now: () => number;
  #lease: Lease | undefined;
  #records!: PrefixMirror;
  #statuses!: PrefixMirror;
  /** The last report written, rewritten under a new lease. */
  #report: string | undefined;
  #closed = false;
  /** Set once the first join succeeded: a lease lost before that is open()'s failure. */
  #joined = false;

  private constructor(o: MembershipOptions) {
    this.#o = o;
    this.#root = o.prefix.replace(/\/+$/, "");
    this.#now = o.now ?? Date.now;
  }

  /** Writes this host's record and reads the region's nodes; fails if etcd cannot be reached. */
  static async open(o: MembershipOptions): Promise<NodeMembership> {
    const m = new NodeMembership(o);
    try {
      await m.#join();
      m.#joined = true;
      m.#records = await PrefixMirror.open(o.client, m.#key("nodes/"), o.timeoutMs, o.log);
      m.#statuses = await PrefixMirror.open(o.client, m.#key("node-status/"), o.timeoutMs, o.log);
    } catch (error) {
      await m.close();
      throw error instanceof GatewayError ? error : unavailable(error);
    }
    return m;
  }

  get name(): string {
    return this.#o.self.name;
  }

  /** This host as the region lists it (also before its own record is seen back). */
  get self(): NodeView {
    return { ...this.#o.self, status: this.status(this.name), last_seen: this.#now() };
  }

  /** An operator set this host "down": it takes no registrations and fails its health name. */
  get draining(): boolean {
    return this.status(this.name) === "down";
  }

  status(name: string): NodeStatus {
    return parseNodeStatus(this.#statuses?.entries.get(name));
  }

  /** Every live node (its lease alive), by name. */
  nodes(): NodeView[] {
    const out: NodeView[] = [];
    for (const [name, json] of this.#records?.entries ?? []) {
      const record = parseNodeRecord(json);
      if (record?.name !== name) continue;
      out.push({ ...record, status: this.status(name), last_seen: this.#now() });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Every node with a status of its own (draining), live or not. */
  statuses(): { name: string; status: NodeStatus }[] {
    return [...(this.#statuses?.entries.keys() ?? [])].map((name) => ({
      name,
      status: this.status(name),
    }));
  }

  /** Calls `listener` after any node or status change; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    const a = this.#records.onChange(listener);
    const b = this.#statuses.onChange(listener);
    return () => {
      a();
      b();
    };
  }

  /** The node a dstack id or a name means, live or with a status; E_NODE_UNKNOWN otherwise. */
  resolve(target: { id: number } | { name: string }): string {
    const known = [...(this.#records?.entries.keys() ?? []), ...this.statuses().map((s) => s.name)];
    const name = findNode(known, target);
    if (name !== undefined) return name;
    if ("name" in target) return target.name;
    throw new GatewayError("E_NODE_UNKNOWN", `no gateway node has id ${target.id}`);
  }

  /** dstack's SetNodeStatus: "down" is kept (no lease, so it outlives restarts), "up" clears it. */
  async setStatus(name: string, status: NodeStatus): Promise<void> {
    try {
      if (status === "down") {
        await this.#o.client
          .put(this.#key(`node-status/${name}`))
          .value(JSON.stringify({ status, since: this.#now() }));
      } else {
        await this.#o.client.delete().key(this.#key(`node-status/${name}`));
      }
    } catch (error) {
      throw unavailable(error);
    }
    this.#o.log?.info({ node: name, status }, "gateway node status set");
  }

  /** Writes this host's handshake report; a failure is logged (the next period tries again). */
  async report(seen: ReadonlyMap<string, number>): Promise<void> {
    const value = encodeHandshakes(this.#now(), seen);
    this.#report = value;
    try {
      await this.#lease?.put(this.#key(`handshakes/${this.name}`)).value(value);
    } catch (err) {
      this.#o.log?.warn({ err }, "could not report handshakes to etcd");
    }
  }

  /** Every live host's latest handshake report, by host name. */
  async reports(): Promise<Map<string, HandshakeReport>> {
    const prefix = this.#key("handshakes/");
    let values: Record<string, string>;
    try {
      values = await this.#o.client.getAll().prefix(prefix).strings();
    } catch (error) {
      throw unavailable(error);
    }
    const out = new Map<string, HandshakeReport>();
    for (const [key, json] of Object.entries(values)) {
      const report = decodeHandshakes(json);
      if (report) out.set(key.slice(prefix.length), report);
    }
    return out;
  }

  /**
   * True when this host holds the recycler key, taking it if nobody does. The key lives under
   * this host's lease: when the holder dies, another host takes it at its next try.
   */
  async lead(): Promise<boolean> {
    const lease = this.#lease;
    if (!lease) return false;
    const key = Buffer.from(this.#key("recycler"));
    try {
      const id = await lease.grant();
      const res = await this.#o.client.kv.txn({
        compare: [{ key, target: "Create", result: "Equal", create_revision: 0 }],
        success: [{ request_put: { key, value: Buffer.from(this.name), lease: id } }],
        failure: [{ request_range: { key } }],
      });
      if (res.succeeded) return true;
      const kv = res.responses[0]?.response_range.kvs[0];
      return kv?.value.toString() === this.name && String(kv.lease) === String(id);
    } catch (err) {
      this.#o.log?.warn({ err }, "could not tell which host recycles");
      return false;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#records?.close(), this.#statuses?.close()]);
    // Revoked, not left to expire: the region stops listing this host at once.
    const bound = new Promise((resolve) => setTimeout(resolve, this.#o.timeoutMs).unref());
    await Promise.race([this.#lease?.revoke().catch(() => undefined), bound]);
    if (this.#o.ownsClient) this.#o.client.close();
  }

  #key(path: string): string {
    return `${this.#root}/${path}`;
  }

  /** Grants a lease and writes this host's record (and last report) under it. */
  async #join(): Promise<void> {
    this.#lease?.release();
    const lease = this.#o.client.lease(this.#o.ttlS ?? NODE_TTL_S);
    this.#lease = lease;
    lease.on("lost", (err) => {
      if (this.#closed || !this.#joined || this.#lease !== lease) return;
      this.#o.log?.warn({ err }, "etcd lease of this node lost; joining again");
      this.#rejoin();
    });
    await lease.put(this.#key(`nodes/${this.name}`)).value(JSON.stringify(this.#o.self));
    if (this.#report !== undefined)
      await lease.put(this.#key(`handshakes/${this.name}`)).value(this.#report);
  }

  #rejoin(): void {
    this.#join().catch((err: unknown) => {
      if (this.#closed) return;
      this.#o.log?.warn({ err }, "joining the region in etcd failed; trying again");
      setTimeout(() => this.#rejoin(), 1000).unref();
    });
  }
}

function unavailable(cause: unknown): GatewayError {
  if (cause instanceof GatewayError) return cause;
  return new GatewayError(
    "E_CLUSTER_UNAVAILABLE",
    `etcd did not answer (${(cause as Error)?.message ?? String(cause)})`,
    { cause },
  );
}
