/**
 * The registration store a config asks for: the state file (`core.state_path`) on a region of
 * one host, or etcd shared by the region's hosts (`core.cluster.enabled`).
 */
import { access, rename } from "node:fs/promises";
import { hostname } from "node:os";
import type { Etcd3 } from "etcd3";
import type { GatewayConfig } from "../config/index.js";
import type { Logger } from "../log/index.js";
import type { IpPlan } from "../registry/allocate.js";
import type { EtcdRegistrationStore } from "../registry/etcd-store.js";
import { FileRegistrationStore, type RegistrationStore } from "../registry/store.js";

/** Where a state file goes once its registrations are in etcd. */
export const MOVED_SUFFIX = ".moved-to-etcd";

/**
 * A host that ran on its own and now joins a region (`core.cluster.enabled` set on a host that
 * has a state file) brings its registrations into an empty region, addresses kept: its CVMs
 * keep their tunnels and need not register again. The file is then renamed, so that a region
 * emptied later is not filled again from it. With registrations already in etcd the file is
 * left alone: the region's state wins, and the log says so.
 */
async function adoptStateFile(
  store: EtcdRegistrationStore,
  statePath: string,
  plan: IpPlan,
  log: Logger,
): Promise<void> {
  try {
    await access(statePath);
  } catch {
    return;
  }
  if (store.list().length > 0) {
    log.warn(
      { state_path: statePath },
      "the region already has registrations in etcd: this host's state file is not brought in",
    );
    return;
  }
  const file = await FileRegistrationStore.open(statePath, plan);
  const records = file.list();
  await file.close();
  await store.adopt(records);
  await rename(statePath, `${statePath}${MOVED_SUFFIX}`);
  log.info(
    { instances: records.length, state_path: statePath, moved_to: `${statePath}${MOVED_SUFFIX}` },
    "brought this host's registrations from its state file into the region's etcd",
  );
}

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
    await adoptStateFile(store, config.core.state_path, plan, log);
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
  const { connectEtcd, etcdClientOptions } = await import("../registry/etcd-client.js");
  const options = etcdClientOptions(config.core.cluster.etcd);
  return () => connectEtcd(options);
}
