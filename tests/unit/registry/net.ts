/** Shared by the registry tests and the crash-writer child: addresses, plans, keys. */
import { type Cidr, parseCidr, parseIpv4 } from "../../../gateway-runtime/config/net.js";
import type { IpPlan } from "../../../gateway-runtime/registry/allocate.js";

export function cidr(text: string): Cidr {
  const block = parseCidr(text);
  if (!block) throw new Error(`bad CIDR in test: ${text}`);
  return block;
}

export function ip(text: string): number {
  const n = parseIpv4(text);
  if (n === undefined) throw new Error(`bad IPv4 in test: ${text}`);
  return n;
}

export function plan(range: string, gateway: string, reserved: string[] = []): IpPlan {
  return { range: cidr(range), gatewayIp: ip(gateway), reserved: reserved.map(cidr) };
}

/** The config defaults: 10.4.0.0/20, gateway 10.4.0.1, reserved 10.4.0.0/27 (4,063 addresses). */
export const DEFAULT_PLAN = plan("10.4.0.0/20", "10.4.0.1", ["10.4.0.0/27"]);

/** A canonical base64 WireGuard key determined by `n`. */
export function wgKey(n: number): string {
  const raw = Buffer.alloc(32);
  raw.writeUInt32LE(n >>> 0);
  raw.writeUInt32BE(0x5eed, 28);
  return raw.toString("base64");
}

/**
 * Brute force: every address of the range tested one by one against the definition (the range
 * minus network and broadcast below /31, the gateway IP and `reserved_net`).
 */
export function allocatableByDefinition(p: IpPlan): number[] {
  const out: number[] = [];
  for (let a = p.range.network; a <= p.range.broadcast; a++) {
    const edge = p.range.prefix < 31 && (a === p.range.network || a === p.range.broadcast);
    const reserved = p.reserved.some((r) => a >= r.network && a <= r.broadcast);
    if (!edge && !reserved && a !== p.gatewayIp) out.push(a);
  }
  return out;
}
