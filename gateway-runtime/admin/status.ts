/**
 * dstack-gateway's `Admin.Status` and `Admin.GetInfo` answers (`StatusResponse`, `HostInfo`
 * and `GetInfoResponse` in its gateway_rpc.proto), field names as its prpc JSON writes them.
 * This gateway is one node without peers yet: `nodes` is empty and `id` is 0.
 */
import type { Instance } from "../registry/index.js";
import type { AdminView } from "./view.js";

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
  readonly nodes: readonly never[];
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
): StatusResponse {
  const hosts = view.instances.map((i) => hostInfo(view, i));
  return {
    id: 0,
    url: urls.url,
    bootnode_url: urls.bootnode,
    num_connections: Object.values(view.proxy.apps).reduce((sum, a) => sum + a.active, 0),
    hosts,
    nodes: [],
  };
}

export function getInfoResponse(view: AdminView, instanceId: string): GetInfoResponse {
  const instance = view.instances.find((i) => i.id === instanceId);
  return instance ? { found: true, info: hostInfo(view, instance) } : { found: false };
}
