/**
 * The HAProxy engine's configuration, rendered from `core.proxy` (layout.ts says how a
 * connection goes through it). Pure text: the caller writes it (reconcile.ts) and checks it
 * with `haproxy -c` when it starts HAProxy (process.ts).
 *
 * The file carries the servers the runtime added through the API (one `server` line per
 * instance in its app's slot), so a HAProxy started again from it serves what the one before
 * served. Its first line is a digest of everything else (`structureDigest`): servers and map
 * entries change through the runtime API, anything else needs a reload.
 *
 * Where this differs from the Node engine (proxy/server.ts), because HAProxy 2.6 has no
 * equivalent:
 * - `connect_top_n`: the Node engine dials up to N healthy instances at once and keeps the first
 *   that connects (`proxy/connect.ts`). HAProxy dials one server, then on a failed connect
 *   retries on another (`retries N-1` + `option redispatch 1`): a refused connect moves on at
 *   once, but a silent instance costs a whole attempt. Each attempt is bounded by
 *   `timeouts.connect / connect_top_n`, so the whole connect stays within `timeouts.connect`
 *   as in the race. A failed instance is not put last for 10 s as `select.ts` does.
 * - `timeouts.handshake` bounds reading the ClientHello (`inspect-delay`); the rest of the TLS
 *   handshake is bounded by `timeouts.idle` (2.6 has no `timeout client-hs`). `write` and
 *   `total` have no HAProxy equivalent; `shutdown` is `timeout client-fin`/`server-fin`.
 * - the PROXY v2 header's destination is the instance's port (HAProxy rewrote the destination
 *   port to dial it), where the Node engine sends the gateway's own address and port.
 * - session tickets: HAProxy's own keys, per terminating listener and worker: a ticket does
 *   not resume across a reload, or between a `g` name and the others.
 * - a malformed ClientHello: `req.ssl_sni` checks only the framing it needs to find the name,
 *   so a whole hello whose other lengths are broken (the extensions' length, the record's, a
 *   flipped byte elsewhere) still passes through to the instance it names, where the Node
 *   reader (`proxy/clienthello.ts`) refuses it; a terminated one meets OpenSSL's own checks.
 *   The adversarial suite counts them (tests/adversarial/clienthello.test.ts).
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { GatewayConfig } from "../../config/index.js";
import { FILES, PROXIES, SLOT_PREFIX, slotName, TERMINATE } from "./layout.js";
import {
  ACCEPTED_AT,
  limitsTracked,
  OVER_LIMIT_RULE,
  type RouteRulesInput,
  sniRules,
  termRules,
} from "./render-routes.js";
import { CIPHERS } from "../../proxy/tls-options.js";

export type ProxyConfig = GatewayConfig["core"]["proxy"];

/** Slots declared when nothing asks for more: an app per slot. */
export const DEFAULT_SLOTS = 64;

/** The Node engine's suites (`proxy/tls-options.ts`), split as HAProxy takes them. */
const SUITES = CIPHERS.split(":");
const CIPHERS_TLS12 = SUITES.filter((c) => !c.startsWith("TLS_")).join(":");
const CIPHERS_TLS13 = SUITES.filter((c) => c.startsWith("TLS_")).join(":");
/** HAProxy 2.6 links OpenSSL 3.0 on Debian: no ML-KEM hybrid, so the classic pair. */
const CURVES = "X25519:P-256";

/** An instance as a server line of its app's slot. */
export interface ServerLine {
  readonly name: string;
  readonly ip: string;
  readonly proxyV2: boolean;
  /** False: declared in maintenance (unhealthy, out of rotation, or being removed). */
  readonly ready: boolean;
}

export interface RenderInput {
  readonly proxy: ProxyConfig;
  /** The engine's directory: sockets, maps, certificate (layout.ts `FILES`). */
  readonly dir: string;
  /** Backend slots to declare. */
  readonly slots: number;
  /** Servers per slot name; slots not listed are empty. */
  readonly servers?: ReadonlyMap<string, readonly ServerLine[]>;
  /**
   * Listening descriptors as HAProxy sees them (handed over by systemd and passed on by the
   * runtime); absent: HAProxy binds `listen_addr:listen_port` and `http_port` itself.
   */
  readonly fds?: { readonly tls?: number | undefined; readonly http?: number | undefined };
  /** Ports to bind instead of the config's (tests). */
  readonly ports?: { readonly tls?: number; readonly http?: number };
}

const ms = (n: number): string => `${Math.max(1, Math.round(n))}ms`;

/** `listen_addr` as a bind address (IPv6 in brackets). */
function bindAddress(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

function balanceLines(balance: ProxyConfig["balance"]): string[] {
  switch (balance) {
    case "least_conn":
      return ["  balance leastconn"];
    case "round_robin":
      return ["  balance roundrobin"];
    case "random":
      return ["  balance random"];
    case "ip_hash":
      // A map-based hash cannot take servers added at runtime; a consistent one can.
      return ["  balance source", "  hash-type consistent"];
  }
}

/** The per-app PROXY v2 choice: the override when there is one, else the gateway's. */
export function appProxyV2(proxy: ProxyConfig, appId: string): boolean {
  return proxy.app_overrides[appId]?.proxy_protocol ?? proxy.proxy_protocol;
}

function routeInput(proxy: ProxyConfig, dir: string): RouteRulesInput {
  const overrides = Object.entries(proxy.app_overrides);
  return {
    baseDomain: proxy.base_domain.replace(/^\./, "").replace(/\.$/, "").toLowerCase(),
    dir,
    proxyProtocol: proxy.proxy_protocol,
    proxyProtocolExceptions: overrides
      .filter(
        ([, o]) => o.proxy_protocol !== undefined && o.proxy_protocol !== proxy.proxy_protocol,
      )
      .map(([app]) => app)
      .sort(),
    maxPerApp: proxy.max_connections_per_app,
    helloTimeoutMs: proxy.timeouts.handshake,
    maxPerAppOverrides: new Map(
      overrides
        .filter(([, o]) => o.max_connections !== undefined)
        .map(([app, o]) => [app, o.max_connections as number] as const)
        .sort(([a], [b]) => (a < b ? -1 : 1)),
    ),
  };
}

function globalSection(input: RenderInput): string[] {
  const { dir, proxy } = input;
  return [
    "global",
    `  pidfile ${join(dir, FILES.pid)}`,
    `  stats socket ${join(dir, FILES.api)} mode 600 level admin expose-fd listeners`,
    "  stats timeout 30s",
    // A reload's old worker keeps its connections this long, as the Node engine's hand-over.
    `  hard-stop-after ${ms(proxy.drain_timeout)}`,
    `  nbthread ${proxy.workers}`,
    "  unix-bind mode 600",
    `  ssl-default-bind-curves ${CURVES}`,
    `  ssl-default-bind-ciphers ${CIPHERS_TLS12}`,
    `  ssl-default-bind-ciphersuites ${CIPHERS_TLS13}`,
    // TLS 1.2 and newer; session tickets stay on (HAProxy's default).
    "  ssl-default-bind-options ssl-min-ver TLSv1.2",
  ];
}

function defaultsSection(proxy: ProxyConfig): string[] {
  const t = proxy.timeouts;
  const idle = t.data_timeout_enabled ? t.idle : t.total;
  return [
    "defaults",
    "  mode tcp",
    `  timeout connect ${ms(t.connect / proxy.connect_top_n)}`,
    `  timeout client ${ms(idle)}`,
    `  timeout server ${ms(idle)}`,
    `  timeout client-fin ${ms(t.shutdown)}`,
    `  timeout server-fin ${ms(t.shutdown)}`,
  ];
}

function sniFrontend(input: RenderInput, routes: RouteRulesInput): string[] {
  const { proxy } = input;
  const port = input.ports?.tls ?? proxy.listen_port;
  const fd = input.fds?.tls;
  const lines = [
    `frontend ${PROXIES.sni}`,
    `  bind ${fd === undefined ? bindAddress(proxy.listen_addr, port) : `fd@${fd}`}`,
    `  ${ACCEPTED_AT}`,
    `  tcp-request inspect-delay ${ms(proxy.timeouts.handshake)}`,
  ];
  if (proxy.max_connections_per_ip > 0) {
    // Counted at accept, before the ClientHello, as the Node engine does; `conn_cur` includes
    // this connection.
    lines.push(
      `  tcp-request connection track-sc0 src table ${PROXIES.perIp}`,
      `  tcp-request connection reject if { sc0_conn_cur gt ${proxy.max_connections_per_ip} }`,
    );
  }
  return lines.concat(sniRules(routes));
}

function termFrontend(
  name: string,
  socket: string,
  alpn: string,
  dir: string,
  routes: RouteRulesInput,
): string[] {
  const crt = join(dir, FILES.certificate);
  return [
    `frontend ${name}`,
    `  bind unix@${join(dir, socket)} accept-proxy ssl crt ${crt} alpn ${alpn}`,
    ...termRules(routes),
  ];
}

/** Port 80: the redirect of `proxy/redirect.ts` (308, lowercase host without port or dot). */
function httpFrontend(input: RenderInput, httpsPort: number): string[] {
  const { proxy } = input;
  const fd = input.fds?.http;
  const port = input.ports?.http ?? proxy.http_port;
  const suffix = httpsPort === 443 ? "" : `:${httpsPort}`;
  return [
    `frontend ${PROXIES.http}`,
    "  mode http",
    `  bind ${fd === undefined ? bindAddress(proxy.listen_addr, port) : `fd@${fd}`}`,
    "  option httpclose",
    `  timeout client ${ms(proxy.timeouts.handshake)}`,
    `  timeout http-request ${ms(proxy.timeouts.handshake)}`,
    "  http-request set-var(txn.host) req.hdr(host),lower,regsub(:[0-9]+$,),regsub(\\.$,)",
    '  http-request return status 400 content-type text/plain string "missing or bad Host header\\n" if !{ var(txn.host) -m reg ^[a-z0-9.-]{1,253}$ }',
    `  http-request redirect location https://%[var(txn.host)]${suffix}%[pathq] code 308`,
  ];
}

function fixedBackends(input: RenderInput): string[] {
  const { dir, proxy } = input;
  const node = join(dir, FILES.slowPath);
  const lines = [
    `backend ${PROXIES.toTerm}`,
    `  server term unix@${join(dir, TERMINATE.http1)} send-proxy-v2`,
    `backend ${PROXIES.toTermH2}`,
    `  server term unix@${join(dir, TERMINATE.h2)} send-proxy-v2`,
    `backend ${PROXIES.node}`,
    `  server node unix@${node} send-proxy-v2`,
    `backend ${PROXIES.direct}`,
    "  server direct 0.0.0.0",
    `backend ${PROXIES.directPp}`,
    "  server direct 0.0.0.0 send-proxy-v2",
    `backend ${PROXIES.reject}`,
    `backend ${PROXIES.helloTimeout}`,
    "  tcp-request content reject",
  ];
  const expire = ms(Math.max(proxy.timeouts.idle, 60_000));
  if (proxy.max_connections_per_ip > 0) {
    lines.push(
      `backend ${PROXIES.perIp}`,
      `  stick-table type ipv6 size 1m expire ${expire} store conn_cur`,
    );
  }
  lines.push(
    `backend ${PROXIES.perApp}`,
    `  stick-table type string len 64 size 100k expire ${expire} store conn_cur`,
  );
  return lines;
}

function serverLine(server: ServerLine): string {
  const pp = server.proxyV2 ? " send-proxy-v2" : "";
  return `  server ${server.name} ${server.ip}${pp}${server.ready ? "" : " disabled"}`;
}

function slotBackends(input: RenderInput, routes: RouteRulesInput): string[] {
  const { proxy } = input;
  const limit = limitsTracked(routes) ? [OVER_LIMIT_RULE] : [];
  const lines: string[] = [];
  for (let i = 0; i < input.slots; i++) {
    const name = slotName(i);
    lines.push(
      `backend ${name}`,
      ...balanceLines(proxy.balance),
      `  retries ${proxy.connect_top_n - 1}`,
      "  option redispatch 1",
      ...limit,
      ...(input.servers?.get(name) ?? []).map(serverLine),
    );
  }
  return lines;
}

/** The configuration without its digest line. */
function body(input: RenderInput): string {
  const routes = routeInput(input.proxy, input.dir);
  const httpsPort = input.ports?.tls ?? input.proxy.listen_port;
  const sections = [
    globalSection(input),
    defaultsSection(input.proxy),
    sniFrontend(input, routes),
    termFrontend(PROXIES.term, TERMINATE.http1, "http/1.1", input.dir, routes),
    termFrontend(PROXIES.termH2, TERMINATE.h2, "h2,http/1.1", input.dir, routes),
    ...(input.proxy.http_redirect ? [httpFrontend(input, httpsPort)] : []),
    fixedBackends(input),
    slotBackends(input, routes),
  ];
  return `${sections.map((lines) => lines.join("\n")).join("\n\n")}\n`;
}

/** What a reload is for: the configuration without its servers. */
export function structureDigest(input: RenderInput): string {
  return createHash("sha256")
    .update(body({ ...input, servers: new Map() }))
    .digest("hex")
    .slice(0, 32);
}

const DIGEST_LINE = /^# structure ([0-9a-f]{32})$/m;

/** The whole haproxy.cfg: the digest line, then the configuration. */
export function renderConfig(input: RenderInput): string {
  return `# structure ${structureDigest(input)}\n${body(input)}`;
}

/** The digest a rendered file carries; undefined for a file this engine did not write. */
export function digestOf(text: string): string | undefined {
  return DIGEST_LINE.exec(text)?.[1];
}

/** How many slots a rendered file declares (`backend app_<n>` lines). */
export function slotsOf(text: string): number {
  const pattern = new RegExp(`^backend ${SLOT_PREFIX}\\d+$`, "gm");
  return text.match(pattern)?.length ?? 0;
}
