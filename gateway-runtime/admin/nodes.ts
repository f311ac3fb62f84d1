/**
 * What the admin API needs of the region's nodes (cluster/membership.ts implements it), and
 * dstack's `SetNodeStatusRequest`: `{id, status}` with status "up" or "down". Our nodes have
 * names, and dstack's id is derived from the name (cluster/node.ts), so `{name, status}` is
 * accepted too: an operator knows the host's name, not its hash.
 */
import { z } from "zod";
import type { HandshakeReport, NodeStatus, NodeView } from "../cluster/index.js";

export interface RegionNodes {
  /** This host's name. */
  readonly name: string;
  nodes(): NodeView[];
  statuses(): { name: string; status: NodeStatus }[];
  resolve(target: { id: number } | { name: string }): string;
  setStatus(name: string, status: NodeStatus): Promise<void>;
  /** Every live host's latest handshake report (etcd's `handshakes/<name>`), by host name. */
  reports(): Promise<ReadonlyMap<string, HandshakeReport>>;
}

export const setNodeStatusRequest = z
  .object({
    id: z
      .number({ error: '"id" must be a number' })
      .int({ error: '"id" must be an integer' })
      .min(0, { error: '"id" must be a uint32' })
      .max(0xffff_ffff, { error: '"id" must be a uint32' })
      .optional(),
    name: z.string({ error: '"name" must be a string' }).min(1).optional(),
    status: z.enum(["up", "down"], { error: '"status" must be "up" or "down"' }),
  })
  .refine((r) => (r.id === undefined) !== (r.name === undefined), {
    error: 'give the node as "id" or "name", one of them',
  });
