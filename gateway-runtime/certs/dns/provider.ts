/**
 * What the certificate manager needs from DNS: add and remove one challenge TXT value, and
 * replace the CAA records of a name. Each provider (Cloudflare API, RFC 2136 dynamic update)
 * implements exactly this; the ACME flow never sees provider details.
 */

/** One CAA record (RFC 8659): flags (128 = critical), a tag such as `issue`, and its value. */
export interface CaaRecord {
  readonly flags: number;
  readonly tag: string;
  readonly value: string;
}

export interface DnsCallOptions {
  readonly signal?: AbortSignal;
}

export interface DnsProvider {
  /** A short name for logs, e.g. `cloudflare` or `rfc2136 127.0.0.1:53`. */
  readonly name: string;
  /** Adds `value` to the TXT records of `name`; other values at `name` stay. Idempotent. */
  setTxt(name: string, value: string, opts?: DnsCallOptions): Promise<void>;
  /** Removes only `value` from the TXT records of `name`. Removing a missing value succeeds. */
  removeTxt(name: string, value: string, opts?: DnsCallOptions): Promise<void>;
  /** Makes `records` the complete CAA set of `name` (see each provider for the change order). */
  setCaa(name: string, records: readonly CaaRecord[], opts?: DnsCallOptions): Promise<void>;
  /** The CAA records of `name` as the provider holds them. */
  listCaa?(name: string, opts?: DnsCallOptions): Promise<CaaRecord[]>;
}

export const sameCaa = (a: CaaRecord, b: CaaRecord): boolean =>
  a.flags === b.flags && a.tag.toLowerCase() === b.tag.toLowerCase() && a.value === b.value;

/** Lower case, no trailing dot: the form names are compared in. */
export const normalizeName = (name: string): string => name.toLowerCase().replace(/\.$/, "");

/** True when `name` is `zone` or below it. */
export function inZone(name: string, zone: string): boolean {
  const n = normalizeName(name);
  const z = normalizeName(zone);
  return z === "" || n === z || n.endsWith(`.${z}`);
}
