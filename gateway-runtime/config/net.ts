/** IPv4 addresses and CIDR blocks as plain numbers: pure functions for config checks and IP allocation. */

export interface Cidr {
  /** The address as written (for `10.4.0.1/16` this is 10.4.0.1). */
  readonly address: number;
  readonly prefix: number;
  /** First and last address of the block. */
  readonly network: number;
  readonly broadcast: number;
}

const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

export function parseIpv4(text: string): number | undefined {
  const m = IPV4.exec(text);
  if (!m) return undefined;
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function formatIpv4(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join(".");
}

export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIpv4(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (address === undefined || !/^(3[0-2]|[12]?\d)$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  const network = (address & mask) >>> 0;
  return { address, prefix, network, broadcast: (network | (~mask >>> 0)) >>> 0 };
}

export function cidrContains(outer: Cidr, ip: number): boolean {
  return ip >= outer.network && ip <= outer.broadcast;
}

export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return cidrContains(outer, inner.network) && cidrContains(outer, inner.broadcast);
}
