/**
 * SNI routing grammar (ARCHITECTURE.md "SNI grammar"). Pure: no I/O, compiled once per config.
 *
 * Under `<base_domain>` exactly one label is allowed, `<id>[-<port>][s|g]`:
 *
 * | label                    | mode          | port        |
 * |--------------------------|---------------|-------------|
 * | `<id>`                   | `terminate`   | 80          |
 * | `<id>-<port>`            | `terminate`   | `<port>`    |
 * | `<id>s` / `<id>-<port>s` | `passthrough` | 443/`<port>`|
 * | `<id>g` / `<id>-<port>g` | `h2`          | 80/`<port>` |
 *
 * `<id>-22` is plain termination to port 22 (SSH over TLS), no special case.
 *
 * Decisions, where dstack-gateway is looser (`gateway/src/proxy.rs` `parse_destination` at tag
 * gateway-v0.5.5; `dstack/gateway/src/proxy.rs` `parse_dst_info` on its `next` branch):
 * - ids are lowercase hex (`hex::encode` of app / instance ids in dstack), so a trailing `s` or
 *   `g` can never belong to an id and `<id>s` is unambiguous. dstack itself reads `abcs` as
 *   the id `abcs` on port 80; that name never matched a hex id there, so nothing breaks.
 * - `<id>-s` and `<id>-g` (empty port before the suffix) mean the default port, as in
 *   dstack's own tests. A bare `<id>-` is an error (dstack silently reads it as port 80).
 * - ports are 1-65535 in canonical decimal: no `0`, no leading zeros, no sign (dstack's
 *   `u16::parse` takes `0`, `+80` and `08080`). One route has exactly one spelling per form.
 * - any two-letter suffix from `{s,g}` (`gs`, `sg`, `ss`, `gg`) is `E_ROUTE_BAD_SUFFIX`.
 * - SNI is lowercased; one trailing dot is dropped (RFC 6066 forbids it, some clients send
 *   it; it names the same host).
 * - names deeper than one label under the base domain are errors, not custom domains (dstack
 *   v0.5.5 errors too; newer dstack sends them to the TXT lookup).
 * - custom names must be syntactically valid host names (`E_ROUTE_BAD_NAME`) so a TXT query
 *   is never built from garbage.
 */
import { GatewayError } from "../errors.js";

export type RouteMode = "terminate" | "passthrough" | "h2";

export interface AppRoute {
  readonly kind: "app";
  /** App id or instance id (lowercase hex); the caller tries the instance first. */
  readonly id: string;
  readonly port: number;
  readonly mode: RouteMode;
}

export interface CustomRoute {
  readonly kind: "custom";
  /** Normalised SNI (lowercase, no trailing dot) to look up via TXT. */
  readonly name: string;
}

/** The gateway's own names, `health.<base>` and `gateway.<base>` (self.ts). */
export type SelfName = "health" | "gateway";

export interface SelfRoute {
  readonly kind: "self";
  readonly name: SelfName;
}

export type Route = AppRoute | CustomRoute | SelfRoute;

/** A label under the base domain: one of the gateway's own names, or an app route. */
function labelRoute(label: string): AppRoute | SelfRoute {
  // Not hex, so never an app id: reserved for the gateway itself, as in dstack.
  if (label === "health" || label === "gateway") return { kind: "self", name: label };
  return parseAppLabel(label);
}

export type RouteErrorCode =
  | "E_ROUTE_BAD_NAME"
  | "E_ROUTE_BASE_DOMAIN"
  | "E_ROUTE_TOO_DEEP"
  | "E_ROUTE_EMPTY_ID"
  | "E_ROUTE_BAD_ID"
  | "E_ROUTE_BAD_PORT"
  | "E_ROUTE_BAD_SUFFIX";

export class RouteError extends GatewayError<RouteErrorCode> {
  constructor(code: RouteErrorCode, message: string) {
    super(code, message);
    this.name = "RouteError";
  }
}

export type Router = (sni: string) => Route;

/** Default backend port per mode when the label has no `-<port>`. */
export const DEFAULT_PORT: Readonly<Record<RouteMode, number>> = {
  terminate: 80,
  passthrough: 443,
  h2: 80,
};

const SUFFIX: Readonly<Record<RouteMode, string>> = { terminate: "", passthrough: "s", h2: "g" };

const MAX_NAME_LENGTH = 253;
const LABEL = /^[a-z0-9_-]{1,63}$/;

/** True for a lowercase-hex app or instance id (what dstack's `hex::encode` produces). */
export function isValidId(id: string): boolean {
  if (id.length === 0 || id.length > 63) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false; // 0-9, a-f
  }
  return true;
}

/** Canonical decimal port 1-65535 (no sign, no leading zero), else `undefined`. */
export function parsePort(text: string): number | undefined {
  if (text.length === 0 || text.length > 5 || text.charCodeAt(0) === 48) return undefined;
  let port = 0;
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    port = port * 10 + d;
  }
  return port <= 65535 ? port : undefined;
}

/** Lowercase, drop one trailing dot, and check host-name syntax. */
function normaliseName(raw: string, what: string): string {
  const name = (raw.endsWith(".") ? raw.slice(0, -1) : raw).toLowerCase();
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new RouteError("E_ROUTE_BAD_NAME", `${what} ${JSON.stringify(raw)}: bad length`);
  }
  for (const label of name.split(".")) {
    if (!LABEL.test(label)) {
      throw new RouteError(
        "E_ROUTE_BAD_NAME",
        `${what} ${JSON.stringify(raw)}: label ${JSON.stringify(label)} is not a host-name label`,
      );
    }
  }
  return name;
}

/** Parse the single label left of the base domain. `label` is already lowercase. */
export function parseAppLabel(label: string): AppRoute {
  let mode: RouteMode = "terminate";
  let body = label;
  const last = label.at(-1);
  if (last === "s" || last === "g") {
    const before = label.at(-2);
    if (before === "s" || before === "g") {
      throw new RouteError("E_ROUTE_BAD_SUFFIX", `label "${label}": suffix "${before}${last}"`);
    }
    mode = last === "s" ? "passthrough" : "h2";
    body = label.slice(0, -1);
  }
  const dash = body.indexOf("-");
  const id = dash === -1 ? body : body.slice(0, dash);
  if (id.length === 0) {
    throw new RouteError("E_ROUTE_EMPTY_ID", `label "${label}": empty id`);
  }
  if (!isValidId(id)) {
    throw new RouteError("E_ROUTE_BAD_ID", `label "${label}": id "${id}" is not lowercase hex`);
  }
  let port = DEFAULT_PORT[mode];
  if (dash !== -1) {
    const text = body.slice(dash + 1);
    // `<id>-s` / `<id>-g` keep the default port (dstack compatibility); a bare `<id>-` does not.
    if (text.length > 0 || mode === "terminate") {
      const parsed = parsePort(text);
      if (parsed === undefined) {
        throw new RouteError("E_ROUTE_BAD_PORT", `label "${label}": port "${text}" not 1-65535`);
      }
      port = parsed;
    }
  }
  return { kind: "app", id, port, mode };
}

/**
 * Canonical label for an app route: the port is written only when it differs from the mode's
 * default. `parseAppLabel(formatAppLabel(r))` returns `r` for every valid `r`.
 */
export function formatAppLabel(route: Omit<AppRoute, "kind">): string {
  const port = route.port === DEFAULT_PORT[route.mode] ? "" : `-${route.port}`;
  return `${route.id}${port}${SUFFIX[route.mode]}`;
}

/** Compile the base domain once; the returned router is called per connection. */
export function compileRouter(opts: { baseDomain: string }): Router {
  const raw = opts.baseDomain.startsWith(".") ? opts.baseDomain.slice(1) : opts.baseDomain;
  const base = normaliseName(raw, "base domain");
  const dottedBase = `.${base}`;

  const general = (sni: string): Route => {
    const name = normaliseName(sni, "SNI");
    if (name === base) {
      throw new RouteError("E_ROUTE_BASE_DOMAIN", `SNI "${name}" is the base domain itself`);
    }
    if (!name.endsWith(dottedBase)) return { kind: "custom", name };
    const label = name.slice(0, -dottedBase.length);
    if (label.includes(".")) {
      throw new RouteError("E_ROUTE_TOO_DEEP", `SNI "${name}": more than one label under base`);
    }
    return labelRoute(label);
  };

  // The common case, checked in one pass without copies: already lowercase, one plain label
  // under the base domain. What it accepts, `general` would read the same way (the base's own
  // labels were checked above); anything else goes to `general` for its checks and errors.
  const labelMax = MAX_NAME_LENGTH - dottedBase.length;
  return (sni: string): Route => {
    const labelLength = sni.length - dottedBase.length;
    if (labelLength < 1 || labelLength > 63 || labelLength > labelMax) return general(sni);
    if (!sni.endsWith(dottedBase)) return general(sni);
    for (let i = 0; i < labelLength; i++) {
      const c = sni.charCodeAt(i);
      // a-z, 0-9, '-'
      if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45)) return general(sni);
    }
    return labelRoute(sni.slice(0, labelLength));
  };
}
