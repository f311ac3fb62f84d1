/**
 * CVM address allocation (ARCHITECTURE.md "State on a host"): pure functions over unsigned 32-bit IPv4 numbers, no I/O.
 * The lowest free address of `core.wg.client_ip_range` wins, so allocation is deterministic and a
 * freed address is handed out again before the range grows into unused space.
 */
import { type Cidr, cidrContains, formatIpv4 } from "../config/net.js";

/** The addresses a gateway hands out: `range` minus what is never given to a CVM. */
export interface IpPlan {
  /** `core.wg.client_ip_range`. */
  readonly range: Cidr;
  /** The gateway's own WireGuard address (`core.wg.ip`); skipped when it lies inside `range`. */
  readonly gatewayIp: number;
  /** `core.wg.reserved_net`: every address inside these blocks is skipped. */
  readonly reserved: readonly Cidr[];
}

export interface AllocateOptions extends IpPlan {
  /** Addresses held by registered instances. Addresses outside `range` are ignored. */
  readonly taken: ReadonlySet<number>;
  /**
   * Start the search here instead of at the start of the range. The caller promises that no
   * address below `from` is free (e.g. one past the last address allocated, lowered whenever an
   * address is freed); a burst of allocations then costs O(1) each instead of O(taken).
   */
  readonly from?: number;
}

/** Inclusive `[first, last]` address interval. */
type Interval = [first: number, last: number];

/** The intervals of `range` that are never allocated, sorted and merged. */
function excluded(plan: IpPlan): Interval[] {
  const { range } = plan;
  const raw: Interval[] = [];
  // RFC 3021: a /31 has no network or broadcast address; a /32 is a single host.
  if (range.prefix < 31)
    raw.push([range.network, range.network], [range.broadcast, range.broadcast]);
  if (cidrContains(range, plan.gatewayIp)) raw.push([plan.gatewayIp, plan.gatewayIp]);
  for (const block of plan.reserved) {
    const first = Math.max(block.network, range.network);
    const last = Math.min(block.broadcast, range.broadcast);
    if (first <= last) raw.push([first, last]);
  }
  raw.sort((a, b) => a[0] - b[0]);
  const merged: Interval[] = [];
  for (const [first, last] of raw) {
    const prev = merged.at(-1);
    if (prev && first <= prev[1] + 1) prev[1] = Math.max(prev[1], last);
    else merged.push([first, last]);
  }
  return merged;
}

/** The lowest allocatable address of the range that is not taken, or undefined when it is full. */
export function allocateIp(opts: AllocateOptions): number | undefined {
  const { range, taken } = opts;
  const gaps = excluded(opts);
  let ip = Math.max(range.network, opts.from ?? range.network);
  let k = 0;
  while (ip <= range.broadcast) {
    let gap = gaps[k];
    while (gap && gap[1] < ip) gap = gaps[++k];
    if (gap && gap[0] <= ip) {
      ip = gap[1] + 1;
      continue;
    }
    if (!taken.has(ip)) return ip;
    ip++;
  }
  return undefined;
}

/** How many addresses could ever be allocated (the range minus network/broadcast/gateway/reserved). */
export function capacity(opts: IpPlan): number {
  const size = opts.range.broadcast - opts.range.network + 1;
  return excluded(opts).reduce((n, [first, last]) => n - (last - first + 1), size);
}

/** Whether `ip` is an address the plan may hand out (ignoring which are taken). */
export function isAllocatable(plan: IpPlan, ip: number): boolean {
  return cidrContains(plan.range, ip) && !excluded(plan).some(([f, l]) => ip >= f && ip <= l);
}

/** `10.4.0.0/20`, the canonical text of a block. */
export function formatCidr(block: Cidr): string {
  return `${formatIpv4(block.network)}/${block.prefix}`;
}
