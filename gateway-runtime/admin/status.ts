/**
 * dstack-gateway's `Admin.Status` and `Admin.GetInfo` answers (`StatusResponse`, `HostInfo`
 * and `GetInfoResponse` in its gateway_rpc.proto), field names as its prpc JSON writes them.
 * In a region (`core.cluster.enabled`) `nodes` lists every live gateway node, draining ones too
 * (dstack's `get_all_nodes`), each with two fields dstack does not send, `name` and `status`;
 * `id` is this node's. A gateway on its own has no nodes and id 0.
 */
import { gatewayNodeInfo, type NodeStatus, nodeId } from "../cluster/index.js";
import type { Instance } from "../registry/index.js";
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
    num_connections: Object.values(view.proxy.apps).reduce((sum, a) => sum + a.active, 0),
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
