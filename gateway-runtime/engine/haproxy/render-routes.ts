/**
 * The routing rules of the HAProxy engine's frontends: the SNI grammar of `proxy/route.ts`
 * (ARCHITECTURE.md "SNI grammar") written as HAProxy 2.6 ACLs, variables and map lookups.
 * Pure text; `render.ts` puts it into the configuration.
 *
 * HAProxy's converter arguments cannot hold a comma or a closing parenthesis, so the
 * regular expressions with counts (`{1,63}`) live in ACL patterns, where they can; the
 * converters only strip (`regsub`) and split (`field`). Ids are lowercase hex, so a trailing
 * `s` or `g` is always the suffix and `regsub(s$,)` can never eat part of an id.
 */
import { join } from "node:path";
import { MAX_HANDSHAKE_BYTES, MAX_RECORD_PAYLOAD } from "../../proxy/clienthello.js";
import { MAPS, PROXIES } from "./layout.js";

/** 1-65535 in canonical decimal (no sign, no leading zero), as `parsePort` accepts. */
const PORT =
  "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/**
 * One label under the base domain: `<id>[-<port>][s|g]`, `<id>-s`, `<id>-g`, at most 63
 * characters. Everything else (`<id>-`, `gs`, a deeper name, `health`) goes to the Node data
 * plane, which answers it with the error or the service `route.ts` gives it.
 */
export const LABEL_REGEX = `^(?=.{1,63}$)[0-9a-f]+(-${PORT}[sg]?|-[sg]|[sg])?$`;

/** The base domain as a regular expression matching its end, dots escaped. */
export function baseSuffixRegex(baseDomain: string): string {
  return `\\.${baseDomain.replace(/\./g, "\\.")}$`;
}

export interface RouteRulesInput {
  /** Lowercase, no trailing dot. */
  readonly baseDomain: string;
  /** The engine's directory, where the map files are. */
  readonly dir: string;
  /** Gateway-wide `proxy_protocol`. */
  readonly proxyProtocol: boolean;
  /** App ids whose `app_overrides` set `proxy_protocol` to the other value. */
  readonly proxyProtocolExceptions: readonly string[];
  /** Gateway-wide `max_connections_per_app` (0: none). */
  readonly maxPerApp: number;
  /** Per app id: `app_overrides.<id>.max_connections`. */
  readonly maxPerAppOverrides: ReadonlyMap<string, number>;
  /** `timeouts.handshake`: fe_sni's inspect-delay, in ms. */
  readonly helloTimeoutMs: number;
}

/** Set at accept (render.ts): how long a connection has waited for its ClientHello. */
export const ACCEPTED_AT = "tcp-request connection set-var(sess.accepted) date(0,ms)";

/**
 * Hellos the Node reader (`proxy/clienthello.ts`) refuses from their first bytes, which
 * `req.ssl_hello_type` would wait for up to the inspect-delay (it wants 9 bytes, then the whole
 * declared message): another record type, a bad record version, a record length of 0 or over
 * MAX_RECORD_PAYLOAD, another handshake type, a body over MAX_HANDSHAKE_BYTES. Node gets them
 * at once and refuses them with its named reason, as the Node engine does.
 */
function refusedAtOnce(): string[] {
  const node = "tcp-request content accept if";
  return [
    "  acl tls_record req.payload(0,1) -m bin 16",
    `  ${node} { req.payload(0,1) -m bin 14 15 17 FF }`,
    `  ${node} tls_record !{ req.payload(1,1) -m bin 03 }`,
    `  ${node} tls_record { req.payload(2,1),be2dec(:,1),add(0) gt 4 }`,
    `  ${node} tls_record { req.payload(3,2),be2dec(:,2),add(0) -m int 0 ${MAX_RECORD_PAYLOAD + 1}: }`,
    `  ${node} tls_record !{ req.payload(5,1) -m bin 01 }`,
    `  ${node} tls_record { req.payload(6,3),be2dec(:,3),add(0) gt ${MAX_HANDSHAKE_BYTES} }`,
  ];
}

/**
 * A connection without a whole hello when the inspect-delay ended (the rules run then with
 * what came, or nothing) stalled: it is refused here (`PROXIES.helloTimeout`), at
 * `timeouts.handshake` as with the Node engine; handed to Node it would wait Node's own hello
 * timeout again. Told from a short hello the client ended (Node's E_HELLO_TRUNCATED) by the
 * time waited: HAProxy 2.6 has no fetch for "the delay expired".
 */
function stalledRule(input: RouteRulesInput): string {
  const ms = input.helloTimeoutMs;
  const waited = Math.max(1, ms - Math.min(10, Math.floor(ms / 10)));
  return `  use_backend ${PROXIES.helloTimeout} if !whole_hello { date(0,ms),sub(sess.accepted) ge ${waited} }`;
}

function map(dir: string, name: keyof typeof MAPS): string {
  return join(dir, MAPS[name]);
}

/**
 * `pp_app`: the connection's app gets a PROXY v2 header. For slot servers the choice is made
 * per server when it is added (reconcile.ts); `be_direct` has one server for every app, hence
 * two direct backends and this ACL (a named ACL cannot be negated, so the exceptions get
 * theirs and `pp_app` is spelled as a condition).
 */
function proxyProtocolAcl(input: RouteRulesInput): { decl: string[]; cond: string } {
  const apps = input.proxyProtocolExceptions;
  if (apps.length === 0) {
    return { decl: [], cond: input.proxyProtocol ? "TRUE" : "FALSE" };
  }
  return {
    decl: [`  acl pp_listed var(txn.app) -m str ${apps.join(" ")}`],
    cond: input.proxyProtocol ? "!pp_listed" : "pp_listed",
  };
}

/**
 * Marks a connection over its app's limit (`txn.over`); `sc1` tracks the connection's app in
 * `st_app`. The refusal itself is the slot's (`OVER_LIMIT_RULE`), so that `show stat` counts it
 * on the app's slot (stats.ts reads it as E_LIMIT_APP): a refusal in `fe_sni` would be counted
 * on the frontend only, which names no app, and read as a client's limit (E_LIMIT_IP).
 */
function appLimitRules(input: RouteRulesInput): string[] {
  const over = "tcp-request content set-var(txn.over) bool(1) if";
  const lines: string[] = [];
  for (const [app, max] of input.maxPerAppOverrides) {
    if (max > 0) lines.push(`  ${over} { var(txn.app) -m str ${app} } { sc1_conn_cur gt ${max} }`);
  }
  if (input.maxPerApp > 0) {
    const others = [...input.maxPerAppOverrides.keys()];
    const except = others.length > 0 ? ` !{ var(txn.app) -m str ${others.join(" ")} }` : "";
    lines.push(`  ${over}${except} { sc1_conn_cur gt ${input.maxPerApp} }`);
  }
  return [
    ...lines,
    "  acl over var(txn.over) -m bool",
    // The app's slot refuses it, whatever the route (a terminated or per-instance name too):
    // before TLS, as the Node engine refuses it after the ClientHello.
    `  tcp-request content set-var(txn.over_slot) var(txn.app),map(${map(input.dir, "apps")}) if over`,
    "  acl over_slot var(txn.over_slot) -m found",
    // An app with no ready server has no slot in the map (a per-instance name): refused here.
    "  tcp-request content reject if over !over_slot",
  ];
}

/** The slot's refusal of a connection `fe_sni` marked over its app's limit (`appLimitRules`). */
export const OVER_LIMIT_RULE = "  tcp-request content reject if { var(txn.over) -m bool }";

export function limitsTracked(input: RouteRulesInput): boolean {
  return input.maxPerApp > 0 || [...input.maxPerAppOverrides.values()].some((n) => n > 0);
}

/**
 * `fe_sni`: the ClientHello is read without answering it; the route decides between the
 * terminating frontends, a passthrough backend and the Node data plane. An instance id is
 * looked up before an app id, as `select.ts` does. Only names whose app has a ready server
 * (`apps.map`) or whose instance is known (`instances.map`) stay here: everything HAProxy
 * cannot serve as the Node engine would goes to Node, which refuses it the same way.
 */
export function sniRules(input: RouteRulesInput): string[] {
  const { dir } = input;
  const base = input.baseDomain;
  const pp = proxyProtocolAcl(input);
  const lines = [
    ...refusedAtOnce(),
    "  # wait for a whole ClientHello record (or the delay); anything else goes to Node as it is,",
    "  # or is refused as stalled when the delay ended without one",
    "  tcp-request content set-var(txn.hello) int(1) if { req.ssl_hello_type 1 }",
    // Routed here only from a whole hello in one record: `req.ssl_sni` finds the name in a hello
    // still short of up to 4 bytes, and `req.ssl_hello_type` counts the headers of later
    // records as the hello's bytes, so either would route an unfinished hello, which then waits
    // in OpenSSL or at the instance for `idle` instead of being closed at `timeouts.handshake`.
    // Node gets a whole hello over several records, as it gets what HAProxy cannot read; one
    // still unfinished when the delay ends is refused (`stalledRule`).
    "  tcp-request content set-var(txn.record) req.payload(3,2),be2dec(:,2) if { var(txn.hello) -m found }",
    "  tcp-request content set-var(txn.message) req.payload(6,3),be2dec(:,3),add(4) if { var(txn.hello) -m found }",
    "  acl whole_hello var(txn.record),sub(txn.message) ge 0",
    "  tcp-request content set-var(txn.sni) req.ssl_sni,lower,regsub(\\.$,) if whole_hello",
    `  acl under_base var(txn.sni) -m end .${base}`,
    `  tcp-request content set-var(txn.label) var(txn.sni),regsub(${baseSuffixRegex(base)},) if under_base`,
    `  acl route_ok var(txn.label) -m reg ${LABEL_REGEX}`,
    "  acl pass var(txn.label) -m end s",
    "  acl h2 var(txn.label) -m end g",
    "  tcp-request content set-var(txn.id) var(txn.label),field(1,-),regsub(s$,),regsub(g$,) if route_ok",
    "  tcp-request content set-var(txn.port) var(txn.label),field(2,-),regsub(s$,),regsub(g$,) if route_ok",
    "  tcp-request content set-var(txn.port) int(443) if route_ok pass !{ var(txn.port) -m reg ^[0-9] }",
    `  tcp-request content set-var(txn.ip) var(txn.id),map(${map(dir, "instances")}) if route_ok`,
    "  acl direct var(txn.ip) -m found",
    `  tcp-request content set-var(txn.app) var(txn.id),map(${map(dir, "owners")}) if route_ok direct`,
    "  tcp-request content set-var(txn.app) var(txn.id) if route_ok !direct",
    "  # a custom domain the runtime resolved: passthrough to <app>:<port>",
    `  tcp-request content set-var(txn.custom) var(txn.sni),map(${map(dir, "custom")}) if !under_base`,
    "  acl custom var(txn.custom) -m found",
    "  tcp-request content set-var(txn.app) var(txn.custom),field(1,:) if custom",
    "  tcp-request content set-var(txn.port) var(txn.custom),field(2,:) if custom",
    `  tcp-request content set-var(txn.slot) var(txn.app),map(${map(dir, "apps")}) if !direct`,
    "  acl slot var(txn.slot) -m found",
    ...pp.decl,
  ];
  const tracked = limitsTracked(input);
  if (tracked) {
    lines.push(
      `  tcp-request content track-sc1 var(txn.app) table ${PROXIES.perApp} if route_ok direct`,
      `  tcp-request content track-sc1 var(txn.app) table ${PROXIES.perApp} if route_ok slot`,
      `  tcp-request content track-sc1 var(txn.app) table ${PROXIES.perApp} if custom slot`,
      ...appLimitRules(input),
    );
  }
  lines.push(
    "  tcp-request content set-dst var(txn.ip) if route_ok pass direct",
    "  tcp-request content set-dst-port var(txn.port) if route_ok pass direct",
    "  tcp-request content set-dst-port var(txn.port) if route_ok pass slot",
    "  tcp-request content set-dst-port var(txn.port) if custom slot",
    stalledRule(input),
    ...(tracked ? ["  use_backend %[var(txn.over_slot)] if over over_slot"] : []),
    `  use_backend ${PROXIES.toTermH2} if route_ok h2 direct`,
    `  use_backend ${PROXIES.toTermH2} if route_ok h2 slot`,
    `  use_backend ${PROXIES.toTerm} if route_ok !pass !h2 direct`,
    `  use_backend ${PROXIES.toTerm} if route_ok !pass !h2 slot`,
    `  use_backend ${PROXIES.directPp} if route_ok pass direct ${pp.cond}`,
    `  use_backend ${PROXIES.direct} if route_ok pass direct`,
    "  use_backend %[var(txn.slot)] if route_ok pass slot",
    "  use_backend %[var(txn.slot)] if custom slot",
    `  default_backend ${PROXIES.node}`,
  );
  return lines;
}

/**
 * `fe_term` / `fe_term_h2`: TLS is terminated; the route is read again from the SNI the
 * handshake saw (variables do not cross the Unix socket hop). `fe_sni` only sends valid
 * terminate and h2 labels here. A name whose app lost its last ready server in between is
 * closed (`be_reject`): its ClientHello is gone, so Node could not take it any more.
 */
export function termRules(input: RouteRulesInput, defaultPort = 80): string[] {
  const { dir } = input;
  const pp = proxyProtocolAcl(input);
  return [
    `  tcp-request content set-var(txn.label) ssl_fc_sni,lower,regsub(\\.$,),regsub(${baseSuffixRegex(input.baseDomain)},)`,
    "  tcp-request content set-var(txn.id) var(txn.label),field(1,-),regsub(g$,)",
    "  tcp-request content set-var(txn.port) var(txn.label),field(2,-),regsub(g$,)",
    `  tcp-request content set-var(txn.port) int(${defaultPort}) if !{ var(txn.port) -m reg ^[0-9] }`,
    `  tcp-request content set-var(txn.ip) var(txn.id),map(${map(dir, "instances")})`,
    "  acl direct var(txn.ip) -m found",
    `  tcp-request content set-var(txn.app) var(txn.id),map(${map(dir, "owners")}) if direct`,
    "  tcp-request content set-var(txn.app) var(txn.id) if !direct",
    `  tcp-request content set-var(txn.slot) var(txn.app),map(${map(dir, "apps")}) if !direct`,
    "  acl slot var(txn.slot) -m found",
    ...pp.decl,
    "  tcp-request content set-dst var(txn.ip) if direct",
    "  tcp-request content set-dst-port var(txn.port)",
    `  use_backend ${PROXIES.directPp} if direct ${pp.cond}`,
    `  use_backend ${PROXIES.direct} if direct`,
    "  use_backend %[var(txn.slot)] if slot",
    `  default_backend ${PROXIES.reject}`,
  ];
}
