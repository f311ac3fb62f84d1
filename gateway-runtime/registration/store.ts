/**
 * The registration store a config asks for: the state file (`core.state_path`) on a region of
 * one host, or etcd shared by the region's hosts (`core.cluster.enabled`).
 */
import { hostname } from "node:os";
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
  if (!cluster.enabled) return FileRegistrationStore.open(config.core.state_path, plan);
  // Loaded only here: a host on the state file never initializes gRPC and etcd's protos.
  const [{ connectEtcd }, { EtcdRegistrationStore }] = await Promise.all([
    import("../registry/etcd-client.js"),
    import("../registry/etcd-store.js"),
  ]);
  const { etcd } = cluster;
  const connect = () =>
    connectEtcd({
      endpoints: etcd.endpoints,
      caFile: etcd.ca_file,
      certFile: etcd.cert_file,
      keyFile: etcd.key_file,
      timeoutMs: etcd.timeout,
    });
  const client = await connect();
  const node = cluster.node_name ?? hostname();
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
