/**
 * The HAProxy engine's layout: the names the rendered configuration, the runtime API calls and
 * the metrics share (`core.proxy.engine = "haproxy"`, ARCHITECTURE.md "The HAProxy engine").
 *
 * How a connection goes through HAProxy 2.6:
 * - `fe_sni` (TCP) reads the ClientHello (`req.ssl_sni`) and decides by the name:
 *   - `<id>[-<port>]s` under the base domain: passthrough, straight to the app's backend slot;
 *   - `<id>[-<port>]` and `<id>[-<port>]g`: to the terminating frontends `fe_term` / `fe_term_h2`
 *     over Unix sockets (`TERMINATE`) with PROXY v2, so the client address survives the hop;
 *   - a custom domain whose TXT answer the runtime installed in `MAPS.custom`: passthrough;
 *   - anything else (unknown or unreadable names, the first connection to a custom domain,
 *     the gateway's own names): `be_node`, the Node data plane on a Unix socket, with PROXY v2.
 * - `fe_term` / `fe_term_h2` terminate TLS (ALPN h2 only on the second) and relay the plain bytes
 *   to the app's slot.
 * - The CVM port comes from the name: the frontends `set-dst-port` it, and servers are declared
 *   without a port, so HAProxy dials the instance's WireGuard address on that port.
 * - An app is a backend slot (`app_<n>`) with one server per instance; the id → slot map is
 *   `MAPS.apps`. HAProxy 2.6 cannot create backends at runtime, hence a pool of slots declared
 *   in the configuration; a pool that runs out is a (seamless) reload with a bigger pool.
 * - An instance id names one instance: `MAPS.instances` maps it to `<ip>`, and `be_direct`
 *   dials the connection's rewritten destination (`set-dst`) with its one portless server.
 */

/** The backend slot names: `app_0` … `app_<n-1>`. */
export const SLOT_PREFIX = "app_";

export function slotName(index: number): string {
  return `${SLOT_PREFIX}${index}`;
}

/** A server per instance, named by its instance id (hex, so a valid HAProxy name). */
export function serverName(instanceId: string): string {
  return `i_${instanceId}`;
}

/** The instance id a server is named by (`serverName` reversed). */
export function instanceIdOf(server: string): string {
  return server.startsWith("i_") ? server.slice(2) : server;
}

/** Map files under the engine's directory, kept current for HAProxy's next start. */
export const MAPS = {
  /** app id → slot name */
  apps: "apps.map",
  /** instance id → WireGuard address */
  instances: "instances.map",
  /** custom domain (lowercase, no trailing dot) → `<app-id>:<port>` from its TXT record */
  custom: "custom.map",
  /**
   * instance id → its app id: the per-app PROXY v2 choice and connection limit apply to a
   * connection that names an instance too, as in the Node engine (added by the engine).
   */
  owners: "owners.map",
} as const;

/** Files and sockets under the engine's directory (`<dirname(state_path)>/haproxy`). */
export const FILES = {
  config: "haproxy.cfg",
  /** The master CLI (`-S`): reload, and the workers' runtime API through `@1`. */
  master: "master.sock",
  /** The worker's runtime API (`stats socket ... level admin expose-fd listeners`). */
  api: "api.sock",
  pid: "haproxy.pid",
  /** The Node data plane's slow-path listener; HAProxy sends it PROXY v2. */
  slowPath: "node.sock",
  /** The served certificate, chain and key in one file, as HAProxy's `crt` reads it. */
  certificate: "gateway.pem",
} as const;

/**
 * The two terminating frontends' Unix sockets under the engine's directory (not abstract
 * sockets: those are one per network namespace, and tests run several gateways in one).
 */
export const TERMINATE = { http1: "term.sock", h2: "term-h2.sock" } as const;

/** The fixed backends and frontends of the rendered configuration (render.ts). */
export const PROXIES = {
  sni: "fe_sni",
  term: "fe_term",
  termH2: "fe_term_h2",
  http: "fe_http",
  /** Relays to the terminating frontends (`TERMINATE`). */
  toTerm: "be_term",
  toTermH2: "be_term_h2",
  /** One portless server dialling the connection's rewritten destination; `_pp` sends PROXY v2. */
  direct: "be_direct",
  directPp: "be_direct_pp",
  node: "be_node",
  /** No server: what a terminating frontend cannot route any more is closed. */
  reject: "be_reject",
  /** Refuses a hello that stalled past the inspect-delay; stats.ts counts it E_HELLO_TIMEOUT. */
  helloTimeout: "be_hello_timeout",
  /** Stick tables: open connections per client address and per app. */
  perIp: "st_ip",
  perApp: "st_app",
} as const;
