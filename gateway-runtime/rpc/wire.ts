/**
 * The JSON shapes of dstack-gateway's `Gateway` RPC service (dstack `gateway/rpc/proto/
 * gateway_rpc.proto`, served by prpc as `POST /prpc/Gateway.<Method>?json`). Field names and
 * order follow the proto; proto3 defaults apply to absent scalars, unknown fields are ignored.
 */
import { z } from "zod";

/** `PortAttrs`: whether the gateway sends a PROXY protocol header to `port`. */
const portAttrs = z.object({
  port: z.number().int().min(1, { error: "port must be 1-65535" }).max(65535, {
    error: "port must be 1-65535",
  }),
  pp: z.boolean().default(false),
});

/** `PortPolicy`: per-port attributes, and whether unlisted ports are closed. */
export const portPolicySchema = z.object({
  ports: z.array(portAttrs).max(65535).default([]),
  restrict_mode: z.boolean().default(false),
});

/** `RegisterCvmRequest`. `port_policy` absent = an older CVM that did not report one. */
export const registerCvmRequestSchema = z.object({
  client_public_key: z.string({ error: "client_public_key must be a string" }),
  port_policy: portPolicySchema.optional(),
});

export type PortPolicy = z.output<typeof portPolicySchema>;
export type RegisterCvmRequest = z.output<typeof registerCvmRequestSchema>;

/** `WireGuardPeer`: one gateway node as the CVM's WireGuard peer. */
export interface WireGuardPeer {
  /** Base64 public key. */
  pk: string;
  /** The node's WireGuard address; dstack sends `core.wg.ip` as written, with its prefix. */
  ip: string;
  /** `host:port` the CVM dials. */
  endpoint: string;
}

/** `GuestAgentConfig`. */
export interface GuestAgentConfig {
  external_port: number;
  internal_port: number;
  domain: string;
  app_address_ns_prefix: string;
}

/** `GatewayNodeInfo`, listed in `gateways` by clustered gateways. */
export interface GatewayNodeInfo {
  id: number;
  uuid: string;
  url: string;
  last_seen: number;
  wg_public_key: string;
  wg_ip: string;
  wg_endpoint: string;
}

/** `RegisterCvmResponse`. */
export interface RegisterCvmResponse {
  wg: { client_ip: string; servers: WireGuardPeer[] };
  agent: GuestAgentConfig;
  gateways?: GatewayNodeInfo[];
}

/** `InfoResponse`. */
export interface InfoResponse {
  base_domain: string;
  external_port: number;
  app_address_ns_prefix: string;
  version: string;
}
