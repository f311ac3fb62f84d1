/**
 * Gateway hosts of one region for the etcd tests: each has its own etcd client (to all members,
 * or to the members it is given) and its own `EtcdRegistrationStore`, like separate machines.
 */
import type { Etcd3 } from "etcd3";
import type { IpPlan } from "../../../gateway-runtime/registry/allocate.js";
import { connectEtcd } from "../../../gateway-runtime/registry/etcd-client.js";
import { EtcdRegistrationStore } from "../../../gateway-runtime/registry/etcd-store.js";
import type { InstanceRecord } from "../../../gateway-runtime/registry/store.js";
import type { EtcdCluster } from "../../../testkit/etcd.js";
import { DEFAULT_PLAN } from "../../unit/registry/net.js";

/** Above an election (etcd runs with a 500 ms election timeout here), so one leader loss is survived. */
export const TIMEOUT_MS = 3000;

export function endpointsOf(etcd: EtcdCluster, members?: number[]): string[] {
  const all = etcd.endpoints.map((u) => u.replace("http://", ""));
  return members ? members.map((k) => all[k] as string) : all;
}

/** Pings every 6 s (etcd refuses more than one per 5 s), so a silent member shows in ~9 s. */
export const KEEPALIVE_MS = 6000;

export async function client(etcd: EtcdCluster, members?: number[]): Promise<Etcd3> {
  return connectEtcd({
    endpoints: endpointsOf(etcd, members),
    timeoutMs: TIMEOUT_MS,
    keepaliveMs: KEEPALIVE_MS,
  });
}

/** A host's store; it closes its client when closed. */
export async function openHost(
  etcd: EtcdCluster,
  prefix: string,
  opts: { members?: number[]; plan?: IpPlan } = {},
): Promise<EtcdRegistrationStore> {
  const c = await client(etcd, opts.members);
  try {
    return await EtcdRegistrationStore.open({
      client: c,
      prefix,
      plan: opts.plan ?? DEFAULT_PLAN,
      timeoutMs: TIMEOUT_MS,
      ownsClient: true,
      connectWatch: () => client(etcd, opts.members),
    });
  } catch (error) {
    c.close();
    throw error;
  }
}

/** The region's registrations as etcd holds them (a linearizable read), sorted by id. */
export async function sharedSet(c: Etcd3, prefix: string): Promise<InstanceRecord[]> {
  const values = await c.getAll().prefix(`${prefix}/instances/`).strings();
  return Object.values(values)
    .map((v) => JSON.parse(v) as InstanceRecord)
    .sort(byId);
}

/** Every `ips/` and `keys/` entry, as `ips/<ip>=<id>`; must match the records exactly. */
export async function indexEntries(c: Etcd3, prefix: string): Promise<string[]> {
  const ips = await c.getAll().prefix(`${prefix}/ips/`).strings();
  const keys = await c.getAll().prefix(`${prefix}/keys/`).strings();
  return [...Object.entries(ips), ...Object.entries(keys)]
    .map(([k, v]) => `${k.slice(prefix.length + 1)}=${v}`)
    .sort();
}

/** The index entries a set of records implies. */
export function impliedIndex(records: readonly InstanceRecord[]): string[] {
  return records
    .flatMap((r) => [
      `ips/${r.ip}=${r.instanceId}`,
      `keys/${Buffer.from(r.publicKey, "base64").toString("base64url")}=${r.instanceId}`,
    ])
    .sort();
}

export const byId = (x: { instanceId: string }, y: { instanceId: string }) =>
  x.instanceId < y.instanceId ? -1 : x.instanceId > y.instanceId ? 1 : 0;
