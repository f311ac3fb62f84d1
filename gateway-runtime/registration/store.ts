/**
 * The registration store a config asks for: the state file (`core.state_path`) on a region of
 * one host, or etcd shared by the region's hosts (`core.cluster.enabled`).
 */
import { hostname } from "node:os";
import type { Etcd3 } from "etcd3";
import type { GatewayConfig } from "../config/index.js";
import type { Logger } from "../log/index.js";
import type { IpPlan } from "../registry/allocate.js";
import { FileRegistrationStore, type RegistrationStore } from "../registry/store.js";

export async function openStore(
  config: GatewayConfig,
  plan: IpPlan,
  log: Logger,
): Promise<RegistrationStore> {
  const { cluster } = config.core;
  const { etcd } = cluster;
  if (!cluster.enabled) return FileRegistrationStore.open(config.core.state_path, plan);
  // Loaded only here: a host on the state file never initializes gRPC and etcd's protos.
  const { EtcdRegistrationStore } = await import("../registry/etcd-store.js");
  const connect = await etcdConnector(config);
  const client = await connect();
  const node = nodeName(config);
  try {
    const store = await EtcdRegistrationStore.open({
      client,
      prefix: cluster.prefix,
      plan,
      timeoutMs: etcd.timeout,
      log: log.child({ node, etcd: cluster.prefix }),
      ownsClient: true,
      connectWatch: connect,
    });
    log.info(
      { node, instances: store.list().length, revision: store.revision },
      "joined the region's registrations in etcd",
    );
    return store;
  } catch (error) {
    client.close();
    throw error;
  }
}

/** This host's name in the region: `core.cluster.node_name`, else the host name. */
export function nodeName(config: GatewayConfig): string {
  return config.core.cluster.node_name ?? hostname();
}

/** Opens a new etcd client as `core.cluster.etcd` says, each call its own connection. */
export async function etcdConnector(config: GatewayConfig): Promise<() => Promise<Etcd3>> {
  const { connectEtcd } = await import("../registry/etcd-client.js");
  const { etcd } = config.core.cluster;
  return () =>
    connectEtcd({
      endpoints: etcd.endpoints,
      caFile: etcd.ca_file,
      certFile: etcd.cert_file,
      keyFile: etcd.key_file,
      timeoutMs: etcd.timeout,
    });
}
