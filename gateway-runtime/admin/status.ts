/**
 * dstack-gateway's `Admin.Status`, `GetInfo`, `GetMeta` and `GetGlobalConnections` answers
 * (`StatusResponse`, `HostInfo`, `GetInfoResponse`, `GetMetaResponse`, `GlobalConnectionsStats`
 * in its gateway_rpc.proto), field names as its prpc JSON writes them.
 * In a region (`core.cluster.enabled`) `nodes` lists every live gateway node, draining ones too
 * (dstack's `get_all_nodes`), each with two fields dstack does not send, `name` and `status`;
 * `id` is this node's. A gateway on its own has no nodes and id 0.
 */
import { gatewayNodeInfo, type NodeStatus, nodeId } from "../cluster/index.js";
import { type Instance, isHealthy } from "../registry/index.js";
import type { GatewayNodeInfo } from "../rpc/wire.js";
import type { RegionNodes } from "./nodes.js";
import type { AdminView } from "./view.js";

/** dstack's `GatewayNodeInfo`, plus the node's name and operator status. */
export interface NodeInfo extends GatewayNodeInfo {
  readonly name: string;
  readonly status: NodeStatus;
}

export interface HostInfo {
  readonly instance_id: string;
  readonly ip: string;
  readonly app_id: string;
  readonly base_domain: string;
  /** Seconds since the epoch; 0 when there was no handshake yet. */
  readonly latest_handshake: number;
  readonly num_connections: number;
}

export interface StatusResponse {
  readonly id: number;
  readonly url: string;
  readonly bootnode_url: string;
  readonly num_connections: number;
  readonly hosts: readonly HostInfo[];
  readonly nodes: readonly NodeInfo[];
}

/** dstack's `GetNodeStatusesResponse`: the nodes with a status of their own. */
export interface NodeStatusesResponse {
  readonly statuses: readonly { readonly node_id: number; readonly status: NodeStatus }[];
}

export type GetInfoResponse =
  | { readonly found: false }
  | { readonly found: true; readonly info: HostInfo };

function hostInfo(view: AdminView, i: Instance): HostInfo {
  return {
    instance_id: i.id,
    ip: i.ip,
    app_id: i.appId,
    base_domain: view.baseDomain,
    latest_handshake: Math.floor(i.lastHandshakeMs / 1000),
    num_connections: view.proxy.instances[i.id] ?? 0,
  };
}

export function statusResponse(
  view: AdminView,
  urls: { readonly url: string; readonly bootnode: string },
  region?: RegionNodes,
): StatusResponse {
  const hosts = view.instances.map((i) => hostInfo(view, i));
  const nodes = (region?.nodes() ?? []).map((n) => ({
    ...gatewayNodeInfo(n),
    name: n.name,
    status: n.status,
  }));
  return {
    id: region ? nodeId(region.name) : 0,
    url: urls.url,
    bootnode_url: urls.bootnode,
    num_connections: openConnections(view),
    hosts,
    nodes,
  };
}

export function nodeStatusesResponse(region: RegionNodes): NodeStatusesResponse {
  return {
    statuses: region.statuses().map((s) => ({ node_id: nodeId(s.name), status: s.status })),
  };
}

export function getInfoResponse(view: AdminView, instanceId: string): GetInfoResponse {
  const instance = view.instances.find((i) => i.id === instanceId);
  return instance ? { found: true, info: hostInfo(view, instance) } : { found: false };
}

/** Client connections open on this node, over every app. */
function openConnections(view: AdminView): number {
  return Object.values(view.proxy.apps).reduce((sum, a) => sum + a.active, 0);
}

/** dstack's `GetMetaResponse`: instances registered, and those online (healthy, here). */
export function metaResponse(view: AdminView): { registered: number; online: number } {
  return {
    registered: view.instances.length,
    online: view.instances.filter((i) => isHealthy(i, view.nowMs, view.healthyHandshakeAgeMs))
      .length,
  };
}

/**
 * dstack's `GlobalConnectionsStats`, from this node's counters only: the hosts of a region
 * publish no connection counts (a count per instance per host in etcd would be a write per
 * connection), so in a region of several live nodes `partial` is true and `node_connections`
 * has this node alone. The map's keys are node ids, as protobuf's JSON writes map keys.
 */
export function globalConnections(
  view: AdminView,
  region?: RegionNodes,
): {
  total_connections: number;
  node_connections: Record<string, number>;
  partial: boolean;
} {
  const open = openConnections(view);
  const id = region ? nodeId(region.name) : 0;
  const others = (region?.nodes() ?? []).filter((n) => n.name !== region?.name);
  return { total_connections: open, node_connections: { [id]: open }, partial: others.length > 0 };
}
