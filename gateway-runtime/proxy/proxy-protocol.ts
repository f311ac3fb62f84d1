/**
 * PROXY protocol version 2 header (HAProxy's proxy-protocol.txt §2.2), sent to a backend before
 * the client's bytes so the app learns the client's address (dstack gives backends no client
 * IP); sent when `core.proxy.proxy_protocol` or the app's `app_overrides` says so.
 *
 * Layout: 12-byte signature, version/command `0x21` (v2, PROXY), family/transport `0x11` (TCP
 * over IPv4) or `0x21` (TCP over IPv6), a big-endian 16-bit length of what follows, then source
 * address, destination address, source port, destination port. No TLVs are sent.
 *
 * IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack listener reports for an IPv4
 * client) are sent as IPv4. When one address is IPv4 and the other a real IPv6 address, both
 * go as IPv6 (the IPv4 one mapped), since the header has one family for both. An IPv6 zone id
 * (`%eth0`) cannot be carried and is dropped.
 */
import { Buffer } from "node:buffer";
import { isIPv4, isIPv6 } from "node:net";
import { GatewayError } from "../errors.js";

export const PROXY_V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);

const VERSION_2_PROXY = 0x21;
const TCP_OVER_IPV4 = 0x11;
const TCP_OVER_IPV6 = 0x21;
const IPV4_BLOCK = 12;
const IPV6_BLOCK = 36;

export interface ProxyAddresses {
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destAddress: string;
  readonly destPort: number;
}

export interface DecodedProxyV2 extends ProxyAddresses {
  readonly family: "tcp4" | "tcp6";
  /** Bytes the header takes, TLVs included: the payload starts there. */
  readonly headerLength: number;
}

export type ProxyProtocolErrorCode = "E_PROXY_BAD_ADDRESS" | "E_PROXY_BAD_PORT";

export class ProxyProtocolError extends GatewayError<ProxyProtocolErrorCode> {
  constructor(code: ProxyProtocolErrorCode, message: string) {
    super(code, message);
    this.name = "ProxyProtocolError";
  }
}

/** The v2 header for a proxied TCP connection from `source*` to `dest*` (the gateway's end). */
export function encodeProxyV2(addresses: ProxyAddresses): Buffer {
  const { sourcePort, destPort } = addresses;
  for (const port of [sourcePort, destPort]) {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
      throw new ProxyProtocolError("E_PROXY_BAD_PORT", `port ${port} is not in 0-65535`);
    }
  }
  const source = parseAddress(addresses.sourceAddress);
  const dest = parseAddress(addresses.destAddress);
  const ipv4 = source.length === 4 && dest.length === 4;
  const size = ipv4 ? 4 : 16;
  const block = ipv4 ? IPV4_BLOCK : IPV6_BLOCK;
  const header = Buffer.alloc(16 + block);
  PROXY_V2_SIGNATURE.copy(header, 0);
  header[12] = VERSION_2_PROXY;
  header[13] = ipv4 ? TCP_OVER_IPV4 : TCP_OVER_IPV6;
  header.writeUInt16BE(block, 14);
  widen(source, size).copy(header, 16);
  widen(dest, size).copy(header, 16 + size);
  header.writeUInt16BE(sourcePort, 16 + 2 * size);
  header.writeUInt16BE(destPort, 18 + 2 * size);
  return header;
}

/**
 * Reads a PROXY v2 TCP header (command PROXY, IPv4 or IPv6) at the start of `buf`. Anything
 * else (no signature, other version, LOCAL, UDP, unix sockets, too few bytes) is `undefined`.
 */
export function decodeProxyV2(buf: Uint8Array): DecodedProxyV2 | undefined {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes.length < 16 || !bytes.subarray(0, 12).equals(PROXY_V2_SIGNATURE)) return undefined;
  if (bytes[12] !== VERSION_2_PROXY) return undefined;
  const family = bytes[13] === TCP_OVER_IPV4 ? "tcp4" : bytes[13] === TCP_OVER_IPV6 ? "tcp6" : "";
  if (family === "") return undefined;
  const length = bytes.readUInt16BE(14);
  const size = family === "tcp4" ? 4 : 16;
  if (length < 2 * size + 4 || bytes.length < 16 + length) return undefined;
  const format = family === "tcp4" ? formatIPv4 : formatIPv6;
  return {
    family,
    sourceAddress: format(bytes.subarray(16, 16 + size)),
    destAddress: format(bytes.subarray(16 + size, 16 + 2 * size)),
    sourcePort: bytes.readUInt16BE(16 + 2 * size),
    destPort: bytes.readUInt16BE(18 + 2 * size),
    headerLength: 16 + length,
  };
}

/** 4 bytes for IPv4 and IPv4-mapped IPv6, 16 bytes for other IPv6. */
function parseAddress(text: string): Buffer {
  const address = text.split("%")[0] ?? "";
  if (isIPv4(address)) return Buffer.from(address.split(".").map(Number));
  const v6 = isIPv6(address) ? parseIPv6(address) : undefined;
  if (v6 === undefined) {
    throw new ProxyProtocolError("E_PROXY_BAD_ADDRESS", `${JSON.stringify(text)} is not an IP`);
  }
  return v6.subarray(0, 12).equals(MAPPED_PREFIX) ? v6.subarray(12) : v6;
}

const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function widen(address: Buffer, size: number): Buffer {
  return address.length === size ? address : Buffer.concat([MAPPED_PREFIX, address]);
}

/** 16 bytes of a textual IPv6 address that `net.isIPv6` accepted (zone id already removed). */
function parseIPv6(text: string): Buffer | undefined {
  let rest = text;
  let ipv4: Buffer | undefined;
  const lastColon = rest.lastIndexOf(":");
  if (rest.includes(".", lastColon)) {
    ipv4 = Buffer.from(
      rest
        .slice(lastColon + 1)
        .split(".")
        .map(Number),
    );
    rest = `${rest.slice(0, lastColon + 1)}0:0`;
  }
  const [head = "", tail] = rest.split("::");
  const words = (part: string): string[] => (part === "" ? [] : part.split(":"));
  const front = words(head);
  const back = tail === undefined ? [] : words(tail);
  const zeros = tail === undefined ? 0 : 8 - front.length - back.length;
  const groups = [...front, ...Array<string>(Math.max(zeros, 0)).fill("0"), ...back];
  if (groups.length !== 8) return undefined;
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => {
    out.writeUInt16BE(Number.parseInt(group, 16), 2 * i);
  });
  if (ipv4 !== undefined) ipv4.copy(out, 12);
  return out;
}

function formatIPv4(bytes: Buffer): string {
  return Array.from(bytes).join(".");
}

/** Lowercase hex, no leading zeros, the first longest run of two or more zero groups as `::`. */
function formatIPv6(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i));
  let best = { start: -1, length: 1 };
  for (let i = 0; i < 8; ) {
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > best.length) best = { start: i, length: end - i };
    i = end === i ? i + 1 : end;
  }
  const hex = (list: number[]): string => list.map((g) => g.toString(16)).join(":");
  if (best.start < 0) return hex(groups);
  return `${hex(groups.slice(0, best.start))}::${hex(groups.slice(best.start + best.length))}`;
}
