/**
 * Custom domains (ARCHITECTURE.md "Custom domains"): an SNI outside the base domain names an app
 * through a TXT record `<prefix>.<sni>` (then `<legacyPrefix>.<sni>`) whose value is
 * `<app-id>:<port>`. The record picks an app, never an address; the caller routes it as
 * passthrough.
 *
 * Decisions:
 * - `node:dns/promises` has no TTL for TXT answers (`resolveTxt` returns strings only, and
 *   `resolveAny` drops TTLs on TXT), so a positive answer is kept for exactly `ttlCapMs`
 *   whatever the record's TTL. Node's c-ares keeps no query cache (a TTL-300 record is
 *   queried again on every `resolveTxt`), so this cache is the only one.
 * - No record (NXDOMAIN/NODATA) and malformed records are cached for `negativeTtlMs`, so a bad
 *   or absent record costs one query per name per negative TTL, not one per connection.
 * - DNS failures (timeout, SERVFAIL, refused...) are not cached; coalescing keeps them to one
 *   query in flight per name.
 * - The prefixes are tried one after the other (dstack queries both at once): one query for
 *   names using the current prefix, two only for legacy ones. A malformed current record does
 *   not fall back to the legacy one.
 * - Several TXT records at one name must agree; chunks of one record are joined (RFC 7208
 *   style). dstack takes the first chunk of whichever record comes first.
 * - The whole `resolve` is bounded by `timeoutMs` with an own timer; a late DNS answer is
 *   dropped, not cached.
 * - Waiters on one lookup, and cache hits, receive the same error object.
 */
import { Resolver } from "node:dns/promises";
import { GatewayError } from "../errors.js";
import { isValidId, parsePort } from "./route.js";

export type CustomDomainErrorCode =
  | "E_CUSTOM_NO_TXT"
  | "E_CUSTOM_BAD_TXT"
  | "E_CUSTOM_DNS_FAILED"
  | "E_CUSTOM_BUSY"
  | "E_CUSTOM_CLOSED"
  | "E_CUSTOM_CONFIG";

export class CustomDomainError extends GatewayError<CustomDomainErrorCode> {
  constructor(code: CustomDomainErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "CustomDomainError";
  }
}

export interface AppAddress {
  readonly appId: string;
  readonly port: number;
}

export interface CustomDomainResolverOptions {
  /** `core.proxy.app_address_ns_prefix`. @default "_dstack-app-address" */
  prefix?: string;
  /** Tried when `<prefix>.<sni>` has no record; omit to disable. Usually `"_tapp-address"`. */
  legacyPrefix?: string;
  /** DNS servers as `ip` or `ip:port` (`[v6]:port`). @default the system's servers */
  servers?: readonly string[];
  /** Bound on one whole `resolve`, both prefixes included. */
  timeoutMs: number;
  /** How long a positive answer is kept. */
  ttlCapMs: number;
  /** How long "no record" and "malformed record" are kept. */
  negativeTtlMs: number;
  /**
   * Cache bound (the least recently used entry goes first), and also the bound on distinct
   * names looked up at once: beyond it `resolve` fails fast with `E_CUSTOM_BUSY`, so a flood of
   * random SNIs cannot turn into an unbounded number of DNS queries.
   */
  maxEntries: number;
  /** Clock for cache expiry. @default Date.now */
  now?: () => number;
}

export interface CustomDomainResolver {
  resolve(sni: string): Promise<AppAddress>;
  /** Entries in the cache (expired ones may linger until touched or evicted). */
  size(): number;
  /** Cancels queries in flight, drops the cache; later `resolve` calls reject. */
  close(): void;
}

export const DEFAULT_APP_ADDRESS_PREFIX = "_dstack-app-address";
export const LEGACY_APP_ADDRESS_PREFIX = "_tapp-address";

type Outcome = { ok: true; value: AppAddress } | { ok: false; error: CustomDomainError };
interface Entry {
  readonly expires: number;
  readonly outcome: Outcome;
}

/**
 * c-ares codes that mean "this name has no such record" rather than "DNS did not answer".
 * EBADNAME (e.g. `<prefix>.<sni>` longer than 253) can never have one either.
 */
const NO_RECORD = new Set(["ENOTFOUND", "ENODATA", "EBADNAME"]);

/** Parse one TXT value `<app-id>:<port>`. */
export function parseAppAddress(text: string): AppAddress | undefined {
  const value = text.trim();
  const colon = value.indexOf(":");
  if (colon === -1) return undefined;
  const appId = value.slice(0, colon).toLowerCase();
  const port = parsePort(value.slice(colon + 1));
  if (!isValidId(appId) || port === undefined) return undefined;
  return { appId, port };
}

function fromRecords(name: string, records: string[][]): AppAddress {
  const values = [...new Set(records.map((chunks) => chunks.join("")))];
  const parsed = values.map(parseAppAddress);
  const [first] = parsed;
  if (first === undefined || parsed.some((p) => p === undefined)) {
    throw new CustomDomainError("E_CUSTOM_BAD_TXT", `TXT ${name}: ${JSON.stringify(values)}`);
  }
  if (parsed.some((p) => p?.appId !== first.appId || p.port !== first.port)) {
    throw new CustomDomainError("E_CUSTOM_BAD_TXT", `TXT ${name}: conflicting ${values}`);
  }
  return first;
}

export function createCustomDomainResolver(
  opts: CustomDomainResolverOptions,
): CustomDomainResolver {
  const now = opts.now ?? Date.now;
  const prefixes = [opts.prefix ?? DEFAULT_APP_ADDRESS_PREFIX];
  if (opts.legacyPrefix !== undefined && opts.legacyPrefix !== prefixes[0]) {
    prefixes.push(opts.legacyPrefix);
  }
  const dns = new Resolver({ timeout: opts.timeoutMs, tries: 1 });
  if (opts.servers !== undefined) {
    try {
      dns.setServers([...opts.servers]);
    } catch (cause) {
      throw new CustomDomainError("E_CUSTOM_CONFIG", `bad DNS servers ${opts.servers}`, { cause });
    }
  }
  const cache = new Map<string, Entry>();
  const inflight = new Map<string, Promise<Outcome>>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  async function queryOne(txtName: string): Promise<AppAddress | undefined> {
    let records: string[][];
    try {
      records = await dns.resolveTxt(txtName);
    } catch (cause) {
      const code = (cause as { code?: unknown }).code;
      if (closed) throw new CustomDomainError("E_CUSTOM_CLOSED", "resolver closed", { cause });
      if (typeof code === "string" && NO_RECORD.has(code)) return undefined;
      throw new CustomDomainError("E_CUSTOM_DNS_FAILED", `TXT ${txtName}: ${String(code)}`, {
        cause,
      });
    }
    return records.length === 0 ? undefined : fromRecords(txtName, records);
  }

  /** Tries each prefix in turn; stops early once `gone()` says nobody waits any more. */
  async function lookup(name: string, gone: () => boolean): Promise<AppAddress> {
    for (const prefix of prefixes) {
      if (gone()) throw new CustomDomainError("E_CUSTOM_DNS_FAILED", `lookup ${name} abandoned`);
      const found = await queryOne(`${prefix}.${name}`);
      if (found !== undefined) return found;
    }
    throw new CustomDomainError("E_CUSTOM_NO_TXT", `no TXT ${prefixes.join("|")}.${name}`);
  }

  /** `lookup` raced against an own timer: settles within `timeoutMs`, never rejects. */
  function bounded(name: string): Promise<Outcome> {
    return new Promise<Outcome>((settle) => {
      let settled = false;
      const finish = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        timers.delete(timer);
        settle(outcome);
      };
      const timer = setTimeout(() => {
        const message = `TXT lookup for ${name} exceeded ${opts.timeoutMs} ms`;
        finish({ ok: false, error: new CustomDomainError("E_CUSTOM_DNS_FAILED", message) });
      }, opts.timeoutMs);
      timers.add(timer);
      lookup(name, () => settled || closed).then(
        (value) => finish({ ok: true, value }),
        (error: unknown) =>
          finish({
            ok: false,
            error:
              error instanceof CustomDomainError
                ? error
                : new CustomDomainError("E_CUSTOM_DNS_FAILED", String(error), { cause: error }),
          }),
      );
    });
  }

  function remember(name: string, outcome: Outcome): void {
    if (closed) return;
    let ttl: number;
    if (outcome.ok) ttl = opts.ttlCapMs;
    else if (outcome.error.code === "E_CUSTOM_DNS_FAILED") return;
    else ttl = opts.negativeTtlMs;
    if (ttl <= 0) return;
    cache.delete(name);
    cache.set(name, { expires: now() + ttl, outcome });
    while (cache.size > opts.maxEntries) {
      const oldest = cache.keys().next();
      if (oldest.done === true) break;
      cache.delete(oldest.value);
    }
  }

  function unwrap(outcome: Outcome): AppAddress {
    if (outcome.ok) return outcome.value;
    throw outcome.error;
  }

  return {
    async resolve(sni: string): Promise<AppAddress> {
      if (closed) throw new CustomDomainError("E_CUSTOM_CLOSED", "resolver closed");
      const name = (sni.endsWith(".") ? sni.slice(0, -1) : sni).toLowerCase();
      const hit = cache.get(name);
      if (hit !== undefined) {
        cache.delete(name);
        if (hit.expires > now()) {
          cache.set(name, hit); // most recently used goes last
          return unwrap(hit.outcome);
        }
      }
      let pending = inflight.get(name);
      if (pending === undefined) {
        if (inflight.size >= opts.maxEntries) {
          throw new CustomDomainError("E_CUSTOM_BUSY", `${inflight.size} TXT lookups in flight`);
        }
        pending = bounded(name).then((outcome) => {
          inflight.delete(name);
          remember(name, outcome);
          return outcome;
        });
        inflight.set(name, pending);
      }
      return unwrap(await pending);
    },
    size: () => cache.size,
    close(): void {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      dns.cancel();
      cache.clear();
    },
  };
}
