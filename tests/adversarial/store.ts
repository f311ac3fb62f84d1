/**
 * Where the adversarial gateway keeps its registrations: the state file (`core.state_path`, a
 * region of one host) or etcd (`core.cluster.enabled`, one real member from testkit/etcd.ts
 * under a prefix of its own). Either way `snapshot()` is what a refused request must leave
 * alone: the state file's bytes, or every registration key under the prefix with its mod
 * revision and value (a rewrite of the same value still shows, as a new revision).
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcdCluster } from "../../testkit/etcd.js";

export type StoreKind = "file" | "etcd";

/** Every store the RPC part runs against; `ADV_STORES=file` narrows it for a quick local run. */
export const STORES: readonly StoreKind[] = (process.env.ADV_STORES ?? "file,etcd")
  .split(",")
  .filter((s): s is StoreKind => s === "file" || s === "etcd");

/** The keys of registrations (etcd-txn.ts), not the nodes' heartbeats and handshake reports. */
const REGISTRATION_KEYS = ["instances/", "ips/", "keys/"];

export interface GatewayStore {
  readonly kind: StoreKind;
  /** `core.cluster` for the gateway's config; undefined for the file store. */
  readonly cluster: object | undefined;
  snapshot(): Promise<string>;
  close(): Promise<void>;
}

export async function openStore(kind: StoreKind, statePath: string): Promise<GatewayStore> {
  if (kind === "file") {
    return {
      kind,
      cluster: undefined,
      snapshot: async () => (existsSync(statePath) ? readFileSync(statePath, "base64") : "none"),
      close: async () => undefined,
    };
  }
  const etcd: EtcdCluster = await startEtcdCluster(1);
  const client = new Etcd3({ hosts: etcd.endpoints });
  const prefix = `/adv-${randomBytes(4).toString("hex")}`;
  return {
    kind,
    cluster: {
      enabled: true,
      node_name: "adv-0",
      prefix,
      etcd: { endpoints: etcd.endpoints.map((url) => url.replace("http://", "")) },
    },
    async snapshot() {
      const lines: string[] = [];
      for (const sub of REGISTRATION_KEYS) {
        const { kvs } = await client.getAll().prefix(`${prefix}/${sub}`).exec();
        for (const kv of kvs) {
          lines.push(`${kv.key.toString()} ${kv.mod_revision} ${kv.value.toString()}`);
        }
      }
      return lines.sort().join("\n");
    },
    async close() {
      client.close();
      await etcd.close();
    },
  };
}
