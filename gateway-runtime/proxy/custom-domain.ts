/**
 * Custom domains (ARCHITECTURE.md "Custom domains"): an SNI outside the base domain names an app
 * through a TXT record `<prefix>.<sni>` (then `<legacyPrefix>.<sni>`, then the wildcard
 * `<prefix>-wildcard.<parent>`, where the parent is the SNI without its first label) whose value
 * is `<app-id>:<port>`. The record picks an app, never an address; the caller routes it as
 * passthrough.
 *
 * Decisions:
 * - Lookups go through `dns/client.ts`, which returns TTLs (`node:dns` gives TXT answers without
 *   them). A positive answer is kept for its records' TTL, at most `ttlCapMs`; no record
 *   (NXDOMAIN/NODATA) for the SOA's negative TTL, at most `negativeTtlMs` (all of it when the
 *   answer has no SOA); a malformed record for its TTL, at most `negativeTtlMs`. An answer that
 *   took several queries (a fallback prefix) is kept as long as the shortest of them holds.
 *   This cache is the only one: the client keeps none.
 * - DNS failures (timeout, SERVFAIL, refused...) are not cached; coalescing keeps them to one
 *   query in flight per name.
 * - The names are tried one after the other (dstack queries the two exact ones at once): one
 *   query for names using the current prefix, two for legacy ones, three for a wildcard. Only
 *   "no record" moves on: a malformed record is reported, not papered over with the next name,
 *   and a DNS failure ends the lookup (dstack moves on to the wildcard after any failure of an
 *   exact lookup; a failure says nothing about whether an exact record exists).
 * - The wildcard follows dstack (#545): one level up only (`a.b.shop.example.com` looks at
 *   `<prefix>-wildcard.b.shop.example.com`), never for the parent itself, and there is no
 *   legacy-prefix form of it. An exact record overrides the wildcard for its name.
 * - Several TXT records at one name must agree; chunks of one record are joined (RFC 7208
 *   style). dstack takes the first chunk of whichever record comes first.
 * - The whole `resolve` is bounded by `timeoutMs` with an own timer, which also aborts the
 *   query in flight: a late DNS answer is dropped, not cached.
 * - Waiters on one lookup, and cache hits, receive the same error object.
 */
import { createDnsClient, DnsClientError, type TxtAnswer } from "../dns/client.js";
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
  /** DNS servers as `ip` or `ip:port` (`[v6]:port`). @default the nameservers of `resolvConf` */
  servers?: readonly string[];
  /** Read when `servers` is empty. @default "/etc/resolv.conf" */
  resolvConf?: string;
  /** Bound on one whole `resolve`, every name tried included. */
  timeoutMs: number;
  /** The longest a positive answer is kept (its TTL decides below that). */
  ttlCapMs: number;
  /** The longest "no record" and "malformed record" are kept (their TTL decides below that). */
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

/** An answer with the name it is for and how much longer it holds. */
export interface TimedAppAddress extends AppAddress {
  /** The SNI lowercased, one trailing dot dropped: the key of the answer. */
  readonly name: string;
  /** How long this answer stays cached from now; 0 when it is not cached. */
  readonly ttlMs: number;
}

export interface CustomDomainResolver {
  resolve(sni: string): Promise<AppAddress>;
  /** `resolve`, with the name and the time the answer holds (for HAProxy's map). */
  resolveTimed(sni: string): Promise<TimedAppAddress>;
  /** Entries in the cache (expired ones may linger until touched or evicted). */
  size(): number;
  /** Cancels queries in flight, drops the cache; later `resolve` calls reject. */
  close(): void;
}

export const DEFAULT_APP_ADDRESS_PREFIX = "_dstack-app-address";
export const LEGACY_APP_ADDRESS_PREFIX = "_tapp-address";

/** What one lookup settled on, and how long it may be reused (ignored for DNS failures). */
type Outcome = ({ ok: true; value: AppAddress } | { ok: false; error: CustomDomainError }) & {
  readonly keepMs: number;
};
interface Entry {
  readonly expires: number;
  readonly outcome: Outcome;
}

/** `ttl` seconds as milliseconds, at most `capMs`; no TTL at all means the cap. */
const capped = (ttl: number | undefined, capMs: number): number =>
  ttl === undefined ? capMs : Math.min(ttl * 1000, capMs);

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
  let dns: ReturnType<typeof createDnsClient>;
  try {
    dns = createDnsClient({
      timeoutMs: opts.timeoutMs,
      ...(opts.servers !== undefined ? { servers: opts.servers } : {}),
      ...(opts.resolvConf !== undefined ? { resolvConf: opts.resolvConf } : {}),
    });
  } catch (cause) {
    throw new CustomDomainError("E_CUSTOM_CONFIG", `bad DNS servers ${opts.servers}`, { cause });
  }
  const cache = new Map<string, Entry>();
  const inflight = new Map<string, Promise<Outcome>>();
  const lookups = new Set<AbortController>();
  let closed = false;

  const noTxt = (txtName: string, keepMs: number): Outcome => ({
    ok: false,
    error: new CustomDomainError("E_CUSTOM_NO_TXT", `no TXT ${txtName}`),
    keepMs,
  });

  /** The outcome of one TXT name; E_CUSTOM_NO_TXT when it has no record. */
  async function queryOne(txtName: string, signal: AbortSignal): Promise<Outcome> {
    let answer: TxtAnswer;
    try {
      answer = await dns.queryTxt(txtName, signal);
    } catch (cause) {
      if (closed) throw new CustomDomainError("E_CUSTOM_CLOSED", "resolver closed", { cause });
      // A name too long for DNS can have no record.
      if (cause instanceof DnsClientError && cause.code === "E_DNS_BAD_NAME") {
        return noTxt(txtName, opts.negativeTtlMs);
      }
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new CustomDomainError("E_CUSTOM_DNS_FAILED", reason, { cause });
    }
    if (answer.records.length === 0) {
      return noTxt(txtName, capped(answer.ttl, opts.negativeTtlMs));
    }
    try {
      const value = fromRecords(txtName, answer.records);
      return { ok: true, value, keepMs: capped(answer.ttl, opts.ttlCapMs) };
    } catch (error) {
      const keepMs = capped(answer.ttl, opts.negativeTtlMs);
      return { ok: false, error: error as CustomDomainError, keepMs };
    }
  }

  /** The TXT names that may hold `name`'s address, in the order they are tried. */
  function txtNames(name: string): string[] {
    const names = prefixes.map((prefix) => `${prefix}.${name}`);
    const dot = name.indexOf(".");
    if (dot > 0) names.push(`${prefixes[0]}-wildcard.${name.slice(dot + 1)}`);
    return names;
  }

  /** Tries each name in turn; the outcome holds no longer than any answer it rests on. */
  async function lookup(name: string, signal: AbortSignal): Promise<Outcome> {
    let keepMs = Number.POSITIVE_INFINITY;
    const names = txtNames(name);
    for (const txtName of names) {
      const outcome = await queryOne(txtName, signal);
      keepMs = Math.min(keepMs, outcome.keepMs);
      if (outcome.ok || outcome.error.code !== "E_CUSTOM_NO_TXT") return { ...outcome, keepMs };
    }
    return noTxt(names.join(", "), keepMs);
  }

  /** `lookup` raced against an own timer that aborts it: settles within `timeoutMs`. */
  async function bounded(name: string): Promise<Outcome> {
    const controller = new AbortController();
    lookups.add(controller);
    const timer = setTimeout(() => controller.abort(), opts.timeoutMs);
    try {
      return await lookup(name, controller.signal);
    } catch (error) {
      if (closed) return failed(new CustomDomainError("E_CUSTOM_CLOSED", "resolver closed"));
      if (controller.signal.aborted) {
        const message = `TXT lookup for ${name} exceeded ${opts.timeoutMs} ms`;
        return failed(new CustomDomainError("E_CUSTOM_DNS_FAILED", message));
      }
      return failed(
        error instanceof CustomDomainError
          ? error
          : new CustomDomainError("E_CUSTOM_DNS_FAILED", String(error), { cause: error }),
      );
    } finally {
      clearTimeout(timer);
      lookups.delete(controller);
    }
  }

  const failed = (error: CustomDomainError): Outcome => ({ ok: false, error, keepMs: 0 });

  function remember(name: string, outcome: Outcome): void {
    if (closed) return;
    if (!outcome.ok && outcome.error.code === "E_CUSTOM_DNS_FAILED") return;
    if (outcome.keepMs <= 0) return;
    cache.delete(name);
    cache.set(name, { expires: now() + outcome.keepMs, outcome });
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

  /** The outcome for `name` (lowercased, no trailing dot) and until when it is cached. */
  async function settle(name: string): Promise<Entry> {
    if (closed) throw new CustomDomainError("E_CUSTOM_CLOSED", "resolver closed");
    const hit = cache.get(name);
    if (hit !== undefined) {
      cache.delete(name);
      if (hit.expires > now()) {
        cache.set(name, hit); // most recently used goes last
        return hit;
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
    const outcome = await pending;
    // Not cached (a DNS failure, a zero TTL, closed meanwhile, evicted already): holds no time.
    const cached = cache.get(name);
    return cached?.outcome === outcome ? cached : { outcome, expires: 0 };
  }

  const normalize = (sni: string): string =>
    (sni.endsWith(".") ? sni.slice(0, -1) : sni).toLowerCase();

  return {
    async resolve(sni: string): Promise<AppAddress> {
      return unwrap((await settle(normalize(sni))).outcome);
    },
    async resolveTimed(sni: string): Promise<TimedAppAddress> {
      const name = normalize(sni);
      const entry = await settle(name);
      const { appId, port } = unwrap(entry.outcome);
      return { name, appId, port, ttlMs: Math.max(0, entry.expires - now()) };
    },
    size: () => cache.size,
    close(): void {
      closed = true;
      for (const controller of lookups) controller.abort();
      lookups.clear();
      cache.clear();
    },
  };
}
