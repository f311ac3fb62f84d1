/**
 * What a certificate manager of a region (`core.cluster`) shares with the region's other hosts,
 * all in etcd under `core.cluster.prefix`:
 *
 *   <prefix>/locks/certbot           the renewal lock (etcd-lock.ts)
 *   <prefix>/certs/<base>/pair       the region's certificate and key (../region.ts)
 *   <prefix>/certs/<base>/ledger     the rate ledger, so hosts share the CA's allowances
 *
 * One etcd client per manager, closed when it stops. Loaded only in a region, so a host alone
 * never initializes gRPC (as registration/store.ts).
 */
import { hostname } from "node:os";
import type { GatewayConfig } from "../../config/index.js";
import type { Logger } from "../../log/index.js";
import { connectEtcd, etcdClientOptions } from "../../registry/etcd-client.js";
import { Ledger } from "../ledger.js";
import type { CertificateManagerOptions } from "../types.js";
import { EtcdLock } from "./etcd-lock.js";
import { EtcdRegister } from "./etcd-register.js";

export type RegionOptions = Required<
  Pick<CertificateManagerOptions, "lock" | "ledger" | "shared" | "node" | "dispose">
>;

/**
 * The lock's lease TTL: three request timeouts (at least 2 s), so a few slow keepalives (each
 * bounded by the timeout, sent every third of the TTL) do not lose it, while a dead holder's
 * lock frees itself within seconds (15 s with the default 5 s timeout).
 */
export function lockTtlSeconds(timeoutMs: number): number {
  return Math.max(2, Math.ceil((3 * timeoutMs) / 1000));
}

export async function regionOptions(config: GatewayConfig, log: Logger): Promise<RegionOptions> {
  const { cluster, certbot, proxy } = config.core;
  const { etcd } = cluster;
  const node = cluster.node_name ?? hostname();
  if (certbot.enabled && certbot.account_url === undefined) {
    log.warn(
      "core.certbot.account_url is unset: each host registers its own ACME account and the CAA records follow whichever renewed last; give every host the same account (the program does)",
    );
  }
  const client = await connectEtcd(etcdClientOptions(etcd));
  const root = cluster.prefix.replace(/\/+$/, "");
  const certs = `${root}/certs/${proxy.base_domain}`;
  const options = { timeoutMs: etcd.timeout, log };
  return {
    node,
    lock: new EtcdLock({
      client,
      key: `${root}/locks/certbot`,
      node,
      ttlSeconds: lockTtlSeconds(etcd.timeout),
      log,
    }),
    ledger: new Ledger(new EtcdRegister(client, `${certs}/ledger`, options)),
    shared: new EtcdRegister(client, `${certs}/pair`, options),
    dispose: async () => client.close(),
  };
}
