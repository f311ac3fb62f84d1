/**
 * Pure text for and from `wg`: the interface config that `wg syncconf` reads, and the
 * `wg show <if> dump` output that health checks read. No I/O here.
 */
import { GatewayError } from "../errors.js";
import { parseIpv4 } from "../config/net.js";
import { decodeWgKey } from "../keys/wireguard.js";

export interface WgPeer {
  /** The peer's base64 public key. */
  readonly publicKey: string;
  /** The peer's single WireGuard address (IPv4); it becomes `AllowedIPs = <ip>/32`. */
  readonly ip: string;
  /**
   * Where the peer was last seen (`ipv4:port` or `[ipv6]:port`). Rendered so this side can
   * start a handshake itself, e.g. after a restart of a userspace interface lost its sessions.
   */
  readonly endpoint?: string;
}

export const isWgEndpoint = (text: string): boolean => ENDPOINT.test(text);

const ENDPOINT = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/;

/** Peer endpoints found in a config this module rendered (an earlier run's file). */
export function parseWgConfigEndpoints(text: string): Map<string, string> {
  const found = new Map<string, string>();
  let key: string | undefined;
  for (const line of text.split("\n")) {
    const [name, value] = line.split(" = ");
    if (line.startsWith("[")) key = undefined;
    else if (name === "PublicKey" && value) key = value.trim();
    else if (name === "Endpoint" && value && key && ENDPOINT.test(value.trim()))
      found.set(key, value.trim());
  }
  return found;
}

export interface WgInterfaceConfig {
  /** Base64 private key of the interface: a secret, only ever written to a 0600 file. */
  readonly privateKey: string;
  readonly listenPort: number;
  readonly peers: readonly WgPeer[];
}

export interface WgPeerStatus {
  /** Latest handshake in ms since the epoch; 0 when there was none. */
  readonly lastHandshakeMs: number;
  /** Where the peer's packets last came from (`host:port`); absent before the first packet. */
  readonly endpoint?: string;
  readonly allowedIps: readonly string[];
  readonly rxBytes: number;
  readonly txBytes: number;
}

export type WgRenderErrorCode = "E_WG_KEY_INVALID" | "E_WG_PEER_INVALID" | "E_WG_PORT_INVALID";

/**
 * Throws E_WG_PEER_INVALID unless every peer has a canonical key and IPv4 address and no key or
 * address repeats. Everything reaching the config file passes here, so a value can never add a
 * line of its own to it.
 */
export function checkWgPeers(peers: readonly WgPeer[]): void {
  const keys = new Set<string>();
  const ips = new Set<string>();
  peers.forEach((peer, i) => {
    if (decodeWgKey(peer.publicKey) === undefined) {
      throw new GatewayError("E_WG_PEER_INVALID", `peer ${i}: publicKey is not a WireGuard key`);
    }
    if (parseIpv4(peer.ip) === undefined) {
      throw new GatewayError("E_WG_PEER_INVALID", `peer ${i}: ip is not an IPv4 address`);
    }
    if (keys.has(peer.publicKey)) {
      throw new GatewayError(
        "E_WG_PEER_INVALID",
        `peer ${i}: public key ${peer.publicKey} repeats`,
      );
    }
    if (peer.endpoint !== undefined && !ENDPOINT.test(peer.endpoint)) {
      throw new GatewayError("E_WG_PEER_INVALID", `peer ${i}: endpoint is not ip:port`);
    }
    if (ips.has(peer.ip)) {
      throw new GatewayError("E_WG_PEER_INVALID", `peer ${i}: ip ${peer.ip} repeats`);
    }
    keys.add(peer.publicKey);
    ips.add(peer.ip);
  });
}

/** Peers in address order, so the same set always renders the same bytes. */
function sortedPeers(peers: readonly WgPeer[]): WgPeer[] {
  const ipNumber = (peer: WgPeer): number => parseIpv4(peer.ip) ?? 0;
  return [...peers].sort((a, b) => ipNumber(a) - ipNumber(b));
}

/** The config `wg setconf` / `wg syncconf` reads. Throws (never echoing the key) on bad input. */
export function renderWgConfig(config: WgInterfaceConfig): string {
  if (decodeWgKey(config.privateKey) === undefined) {
    throw new GatewayError("E_WG_KEY_INVALID", "the private key is not a WireGuard key");
  }
  const port = config.listenPort;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new GatewayError("E_WG_PORT_INVALID", `listen port ${port} is not in 1-65535`);
  }
  checkWgPeers(config.peers);
  const lines = ["[Interface]", `PrivateKey = ${config.privateKey}`, `ListenPort = ${port}`];
  for (const peer of sortedPeers(config.peers)) {
    lines.push("", "[Peer]", `PublicKey = ${peer.publicKey}`, `AllowedIPs = ${peer.ip}/32`);
    if (peer.endpoint !== undefined) lines.push(`Endpoint = ${peer.endpoint}`);
  }
  return `${lines.join("\n")}\n`;
}

const NONE = "(none)";
const DECIMAL = /^\d+$/;

function dumpError(line: number, what: string): GatewayError<"E_WG_DUMP_INVALID"> {
  // The line itself is never quoted: the interface line holds the private key.
  return new GatewayError("E_WG_DUMP_INVALID", `wg dump line ${line}: ${what}`);
}

/**
 * Reads `wg show <if> dump`: a tab-separated interface line (private key, public key, listen
 * port, fwmark), which is skipped, then one line per peer: public key, preshared key, endpoint,
 * allowed IPs, latest handshake (s since the epoch, 0 = never), rx bytes, tx bytes, keepalive.
 * The map iterates in public-key order whatever order `wg` printed.
 */
export function parseWgDump(text: string): Map<string, WgPeerStatus> {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  if (lines.length === 0 || lines[0]?.split("\t").length !== 4) {
    throw dumpError(1, "expected the interface line (4 fields)");
  }
  const entries: [string, WgPeerStatus][] = [];
  for (let i = 1; i < lines.length; i++) {
    const fields = lines[i]?.split("\t") ?? [];
    if (fields.length !== 8) throw dumpError(i + 1, `expected 8 fields, got ${fields.length}`);
    const [publicKey = "", , endpoint = "", allowed = "", handshake = "", rx = "", tx = ""] =
      fields;
    if (decodeWgKey(publicKey) === undefined) throw dumpError(i + 1, "bad public key");
    if (![handshake, rx, tx].every((f) => DECIMAL.test(f))) {
      throw dumpError(i + 1, "handshake and transfer must be decimal numbers");
    }
    const status: WgPeerStatus = {
      lastHandshakeMs: Number(handshake) * 1000,
      ...(endpoint === NONE ? {} : { endpoint }),
      allowedIps: allowed === NONE ? [] : allowed.split(","),
      rxBytes: Number(rx),
      txBytes: Number(tx),
    };
    entries.push([publicKey, status]);
  }
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return new Map(entries);
}
