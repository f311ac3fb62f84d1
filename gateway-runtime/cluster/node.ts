/**
 * The gateway hosts ("nodes") of a region as etcd holds them, and what the RPC and admin answers
 * make of them: pure, no I/O. Key layout under `core.cluster.prefix`:
 *
 * - `nodes/<name>`: a host's record (JSON), under that host's lease: it vanishes when the host
 *   stops renewing it (crash, partition), within the lease's TTL.
 * - `node-status/<name>`: `{"status":"down"}` while an operator has the host draining; no lease,
 *   so it outlives restarts. No key means up.
 * - `handshakes/<name>`: the latest WireGuard handshake the host saw per instance, under its
 *   lease (recycling decides on the freshest any host saw).
 * - `recycler`: the name of the host that runs recycling, under its lease.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { GatewayNodeInfo, WireGuardPeer } from "../rpc/wire.js";

/** dstack's `SetNodeStatusRequest.status` values; "down" is this gateway's draining. */
export type NodeStatus = "up" | "down";

/** What a host writes about itself at `nodes/<name>`. */
export interface NodeRecord {
  readonly name: string;
  readonly wg_public_key: string;
  /** `core.wg.ip` as written, with its prefix: what dstack sends in `WireGuardPeer.ip`. */
  readonly wg_ip: string;
  readonly wg_endpoint: string;
  /** Its admin/sync URL (`core.sync.my_url`), or "". */
  readonly url: string;
  readonly version: string;
  /** ms since the epoch. */
  readonly started_at: number;
}

/** A live host and the status an operator gave it. */
export interface NodeView extends NodeRecord {
  readonly status: NodeStatus;
  /** Latest sign of life known here (its start, its latest handshake report), ms. */
  readonly last_seen: number;
}

const nodeRecordSchema = z.object({
  name: z.string().min(1),
  wg_public_key: z.string(),
  wg_ip: z.string(),
  wg_endpoint: z.string(),
  url: z.string().default(""),
  version: z.string().default(""),
  started_at: z.number().default(0),
});

/** A `nodes/` value; undefined when it is not one (another version's, a hand edit). */
export function parseNodeRecord(json: string): NodeRecord | undefined {
  try {
    const parsed = nodeRecordSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A `node-status/` value; anything but a well-formed "down" counts as up. */
export function parseNodeStatus(json: string | undefined): NodeStatus {
  if (json === undefined) return "up";
  try {
    return (JSON.parse(json) as { status?: unknown })?.status === "down" ? "down" : "up";
  } catch {
    return "up";
  }
}

/**
 * dstack numbers its nodes (`GatewayNodeInfo.id`, `SetNodeStatusRequest.id`); ours have names.
 * The id is derived from the name, so every host computes the same one with no counter in etcd
 * and it survives restarts.
 */
export function nodeId(name: string): number {
  return createHash("sha256").update(`node:${name}`).digest().readUInt32BE(0);
}

/** dstack's `bytes uuid`, as its prpc JSON writes bytes ("0x" + hex); stable per name. */
export function nodeUuid(name: string): string {
  return `0x${createHash("sha256").update(`uuid:${name}`).digest().subarray(0, 16).toString("hex")}`;
}

export function gatewayNodeInfo(node: NodeView): GatewayNodeInfo {
  return {
    id: nodeId(node.name),
    uuid: nodeUuid(node.name),
    url: node.url,
    last_seen: Math.floor(node.last_seen / 1000),
    wg_public_key: node.wg_public_key,
    wg_ip: node.wg_ip,
    wg_endpoint: node.wg_endpoint,
  };
}

/**
 * RegisterCvm's `servers` and `gateways`, as dstack's `get_active_nodes`: every live host not
 * draining. This host comes first (it just answered, so it is reachable, and the agent takes its
 * address prefix from the first server), the others by name, so answers are stable. This host is
 * listed even if its own record is missing from the view (etcd slow): a CVM always gets the peer
 * it registered with.
 */
export function activeNodes(self: NodeView, nodes: readonly NodeView[]): NodeView[] {
  const others = nodes
    .filter((n) => n.name !== self.name && n.status === "up")
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [self, ...others];
}

export function wireGuardPeer(node: NodeRecord): WireGuardPeer {
  return { pk: node.wg_public_key, ip: node.wg_ip, endpoint: node.wg_endpoint };
}

/** Finds a node by dstack's numeric id or by name; undefined when none or ambiguous. */
export function findNode(
  names: Iterable<string>,
  target: { id: number } | { name: string },
): string | undefined {
  const matches = [...new Set(names)].filter((name) =>
    "name" in target ? name === target.name : nodeId(name) === target.id,
  );
  return matches.length === 1 ? matches[0] : undefined;
}
