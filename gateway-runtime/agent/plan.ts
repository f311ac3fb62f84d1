/**
 * From a RegisterCvm response to the CVM's WireGuard interface: which address it gets, which
 * gateway nodes are its peers, and the config text `wg syncconf` reads. Pure, no I/O.
 *
 * dstack's CVM side (dstack-util `system_setup.rs`) writes `Address = <client_ip>/32` and, per
 * server, `AllowedIPs = <server ip>/32`, `Endpoint`, `PersistentKeepalive = 25`; wg-quick then
 * routes each server address into the tunnel. We do the same, except that the address takes
 * the prefix the gateway sends with its own `ip` (`10.4.0.1/16` gives `10.4.0.2/16`), so the
 * tunnel network is on-link; a server outside that network gets a /32 route. AllowedIPs stays
 * the server's /32: nothing but the gateway may speak through the tunnel.
 */
import { z } from "zod";
import { cidrContains, formatIpv4, parseCidr, parseIpv4 } from "../config/net.js";
import { GatewayError } from "../errors.js";
import { isWgKey } from "../keys/wireguard.js";

/** dstack's interval; also what wg-quick users set. */
export const PERSISTENT_KEEPALIVE_S = 25;

const server = z.object({ pk: z.string(), ip: z.string(), endpoint: z.string() });

/** The fields of `RegisterCvmResponse` the agent uses; everything else is ignored. */
const responseSchema = z.object({
  wg: z.object({ client_ip: z.string(), servers: z.array(server) }),
  agent: z.object({ domain: z.string() }).partial().optional(),
});

export interface TunnelPeer {
  readonly publicKey: string;
  /** The node's tunnel address, no prefix. */
  readonly ip: string;
  /** `host:port`, as the gateway sent it. */
  readonly endpoint: string;
}

export interface TunnelPlan {
  readonly clientIp: string;
  /** `ip address` form: `<client_ip>/<prefix of the first server's ip, else 32>`. */
  readonly address: string;
  /** Sorted by public key, so the same response always renders the same bytes. */
  readonly peers: readonly TunnelPeer[];
  /** `<ip>/32` of every server the address's network does not cover. */
  readonly routes: readonly string[];
  /** `agent.domain` (the gateway's base domain), when sent. */
  readonly domain?: string;
}

function bad(what: string): GatewayError<"E_AGENT_BAD_RESPONSE"> {
  return new GatewayError("E_AGENT_BAD_RESPONSE", `RegisterCvm response: ${what}`);
}

const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$/;

/** `host:port` with a DNS name, IPv4 or bracketed IPv6 host; nothing a config line could hide in. */
export function isEndpoint(text: string): boolean {
  const colon = text.lastIndexOf(":");
  if (colon < 1) return false;
  const port = text.slice(colon + 1);
  return HOST.test(text.slice(0, colon)) && /^\d{1,5}$/.test(port) && +port >= 1 && +port <= 65535;
}

/** Splits `10.4.0.1/16` or `10.4.0.1`; undefined when it is neither. */
function serverAddress(text: string): { ip: number; prefix: number | undefined } | undefined {
  if (!text.includes("/")) {
    const ip = parseIpv4(text);
    return ip === undefined ? undefined : { ip, prefix: undefined };
  }
  const cidr = parseCidr(text);
  return cidr && { ip: cidr.address, prefix: cidr.prefix };
}

/**
 * Checks a parsed JSON body and turns it into a plan. Throws `E_AGENT_BAD_RESPONSE` naming the
 * field: every value ends up in a config file or an `ip` command, so none is taken unchecked.
 */
export function planFromResponse(body: unknown): TunnelPlan {
  const parsed = responseSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw bad(`${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`);
  }
  const { wg, agent } = parsed.data;
  const client = parseIpv4(wg.client_ip);
  if (client === undefined) throw bad(`wg.client_ip ${JSON.stringify(wg.client_ip)} is not IPv4`);
  if (wg.servers.length === 0) throw bad("wg.servers is empty");
  const keys = new Set<string>();
  const servers = wg.servers.map((s, i) => {
    const where = `wg.servers[${i}]`;
    if (!isWgKey(s.pk)) throw bad(`${where}.pk is not a WireGuard public key`);
    if (keys.has(s.pk)) throw bad(`${where}.pk repeats`);
    keys.add(s.pk);
    const address = serverAddress(s.ip);
    if (!address)
      throw bad(`${where}.ip ${JSON.stringify(s.ip)} is not IPv4 (with optional /prefix)`);
    if (address.ip === client) throw bad(`${where}.ip is the client's own address`);
    if (!isEndpoint(s.endpoint))
      throw bad(`${where}.endpoint ${JSON.stringify(s.endpoint)} is not host:port`);
    return { publicKey: s.pk, ip: address.ip, prefix: address.prefix, endpoint: s.endpoint };
  });
  const prefix = servers[0]?.prefix ?? 32;
  const network = parseCidr(`${wg.client_ip}/${prefix}`);
  if (!network) throw bad(`cannot form ${wg.client_ip}/${prefix}`);
  return {
    clientIp: wg.client_ip,
    address: `${wg.client_ip}/${prefix}`,
    peers: servers
      .map((s) => ({ publicKey: s.publicKey, ip: formatIpv4(s.ip), endpoint: s.endpoint }))
      .sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0)),
    routes: servers
      .filter((s) => !cidrContains(network, s.ip))
      .map((s) => `${formatIpv4(s.ip)}/32`),
    ...(agent?.domain === undefined ? {} : { domain: agent.domain }),
  };
}

/**
 * The `wg syncconf` text for `plan`. `privateKey` is a secret: this text only ever goes to a
 * 0600 file. No `Address` line: that is wg-quick syntax, which `wg` rejects; the agent sets the
 * address with `ip`.
 */
export function renderTunnelConfig(
  plan: TunnelPlan,
  privateKey: string,
  listenPort: number | undefined,
): string {
  const lines = ["[Interface]", `PrivateKey = ${privateKey}`];
  if (listenPort !== undefined) lines.push(`ListenPort = ${listenPort}`);
  for (const peer of plan.peers) {
    lines.push(
      "",
      "[Peer]",
      `PublicKey = ${peer.publicKey}`,
      `AllowedIPs = ${peer.ip}/32`,
      `Endpoint = ${peer.endpoint}`,
      `PersistentKeepalive = ${PERSISTENT_KEEPALIVE_S}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/**
 * `next` plus the peers of `previous` it leaves out for which `keep` holds (sorted as
 * `planFromResponse` sorts, with their routes). A refresh's answer lists the hosts taking new
 * registrations, so a draining host is missing from it while connections through it still
 * run: its peer stays as long as it carries traffic.
 */
export function keepPeers(
  next: TunnelPlan,
  previous: TunnelPlan,
  keep: (peer: TunnelPeer) => boolean,
): TunnelPlan {
  const listed = new Set(next.peers.map((p) => p.publicKey));
  const kept = previous.peers.filter((p) => !listed.has(p.publicKey) && keep(p));
  if (kept.length === 0) return next;
  const keptRoutes = kept.map((p) => `${p.ip}/32`).filter((r) => previous.routes.includes(r));
  return {
    ...next,
    peers: [...next.peers, ...kept].sort((a, b) =>
      a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0,
    ),
    routes: [...next.routes, ...keptRoutes.filter((r) => !next.routes.includes(r))],
  };
}
