/**
 * CAA records pinning issuance for the base domain to one CA, one ACME account and DNS-01
 * (RFC 8659, RFC 8657). Pure functions; the manager writes the result through a DnsProvider.
 */
import type { CaaRecord } from "./dns/provider.js";

/** RFC 8659 §4.2: a parameter value is printable ASCII without `;` and without spaces. */
const PARAM_VALUE = /^[\x21-\x3a\x3c-\x7e]+$/;
const ISSUER =
  /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** The `issue` value: `<ca>; accounturi=<account>; validationmethods=dns-01`. */
export function caaValue(caIdentifier: string, accountUrl: string): string {
  if (!ISSUER.test(caIdentifier)) {
    throw new RangeError(`"${caIdentifier}" is not a CA domain name usable in CAA`);
  }
  if (!PARAM_VALUE.test(accountUrl) || !URL.canParse(accountUrl)) {
    throw new RangeError(`"${accountUrl}" is not an account URL usable in CAA`);
  }
  return `${caIdentifier}; accounturi=${accountUrl}; validationmethods=dns-01`;
}

/** `issue` and `issuewild` records allowing only this CA, this account, and DNS-01. */
export function caaRecords(caIdentifier: string, accountUrl: string): CaaRecord[] {
  const value = caaValue(caIdentifier, accountUrl);
  return [
    { flags: 0, tag: "issue", value },
    { flags: 0, tag: "issuewild", value },
  ];
}

/** The CA's CAA identifier: the directory's `meta.caaIdentities[0]`, else the ACME host. */
export function caIdentifier(directory: unknown, acmeUrl: string): string {
  const meta = (directory as { meta?: { caaIdentities?: unknown } } | null)?.meta;
  const ids = meta?.caaIdentities;
  if (Array.isArray(ids) && typeof ids[0] === "string" && ids[0] !== "") return ids[0];
  return new URL(acmeUrl).hostname;
}

interface ParsedIssue {
  readonly issuer: string;
  readonly params: ReadonlyMap<string, string>;
}

/** Splits an issue value into its issuer and parameters (keys lower-cased), or undefined. */
export function parseIssueValue(value: string): ParsedIssue | undefined {
  const [head, ...rest] = value.split(";");
  const params = new Map<string, string>();
  for (const part of rest) {
    const text = part.trim();
    if (text === "") continue;
    const eq = text.indexOf("=");
    if (eq <= 0) return undefined;
    params.set(text.slice(0, eq).trim().toLowerCase(), text.slice(eq + 1).trim());
  }
  return { issuer: (head ?? "").trim().toLowerCase(), params };
}

/** Same record by meaning: flags, tag, and for issue tags the issuer and parameter set. */
export function caaEquivalent(a: CaaRecord, b: CaaRecord): boolean {
  const tag = a.tag.toLowerCase();
  if (a.flags !== b.flags || tag !== b.tag.toLowerCase()) return false;
  if (tag !== "issue" && tag !== "issuewild") return a.value === b.value;
  const pa = parseIssueValue(a.value);
  const pb = parseIssueValue(b.value);
  if (!pa || !pb) return a.value === b.value;
  if (pa.issuer !== pb.issuer || pa.params.size !== pb.params.size) return false;
  return [...pa.params].every(([k, v]) => pb.params.get(k) === v);
}

/**
 * The full CAA set to write: our `issue`/`issuewild` records plus every existing record with
 * another tag (`iodef` and the like), which we leave as the operator set them.
 */
export function desiredCaa(
  existing: readonly CaaRecord[],
  ours: readonly CaaRecord[],
): CaaRecord[] {
  const keep = existing.filter((r) => !["issue", "issuewild"].includes(r.tag.toLowerCase()));
  return [...ours, ...keep];
}

/** True when `existing` is exactly `desired` (by meaning, ignoring order and duplicates). */
export function caaUpToDate(
  existing: readonly CaaRecord[],
  desired: readonly CaaRecord[],
): boolean {
  return (
    existing.every((e) => desired.some((d) => caaEquivalent(e, d))) &&
    desired.every((d) => existing.some((e) => caaEquivalent(e, d)))
  );
}
