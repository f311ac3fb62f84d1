/**
 * A small persisted record of what the CA's rate limits count, so that a gateway stuck in a
 * failure loop (or restarted in one) stops before the CA starts refusing: failed validations
 * per hostname per hour, certificates per domain per week, and duplicate certificates (the same
 * name set) per week. Let's Encrypt's values are the defaults. The ledger lives in the work
 * directory (`ledger.json`), or in a region (`core.cluster`) in etcd, so that the hosts sharing
 * one certificate also share one allowance; it is written only by the node holding the renewal
 * lock (and in etcd only if unchanged since it was read).
 *
 * It counts only this gateway's requests: certificates issued elsewhere for the same registered
 * domain (other regions, other tools) use up the same CA limits without appearing here.
 */
import { FileRegister, type Register, updateRegister } from "./register.js";

export interface RateLimits {
  readonly failedValidationsPerHour: number;
  readonly certificatesPerWeek: number;
  readonly duplicateCertificatesPerWeek: number;
}

export const LETS_ENCRYPT_LIMITS: RateLimits = {
  failedValidationsPerHour: 5,
  certificatesPerWeek: 50,
  duplicateCertificatesPerWeek: 5,
};

export const HOUR_MS = 3_600_000;
export const WEEK_MS = 7 * 24 * HOUR_MS;

export interface LedgerData {
  readonly failures: readonly { readonly name: string; readonly at: number }[];
  readonly issued: readonly { readonly names: readonly string[]; readonly at: number }[];
}

export const EMPTY_LEDGER: LedgerData = { failures: [], issued: [] };

export interface Block {
  /** Earliest time (ms since epoch) the CA would accept the attempt. */
  readonly until: number;
  readonly reason: string;
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((n) => b.includes(n));

/** When `times` (within `windowMs` of `now`) drop below `limit`, if they are at it now. */
function freeAt(times: number[], limit: number, windowMs: number, now: number): number | undefined {
  const inWindow = times.filter((t) => t > now - windowMs).sort((a, b) => a - b);
  if (inWindow.length < limit) return undefined;
  return (inWindow[inWindow.length - limit] as number) + windowMs;
}

/** Whether an order for `names` now would hit a limit; the latest block wins. */
export function blockedUntil(
  data: LedgerData,
  names: readonly string[],
  now: number,
  limits: RateLimits = LETS_ENCRYPT_LIMITS,
): Block | undefined {
  const blocks: Block[] = [];
  for (const name of names) {
    const times = data.failures.filter((f) => f.name === name).map((f) => f.at);
    const until = freeAt(times, limits.failedValidationsPerHour, HOUR_MS, now);
    if (until !== undefined) {
      blocks.push({
        until,
        reason: `${limits.failedValidationsPerHour} failed validations for ${name} within an hour`,
      });
    }
  }
  const all = freeAt(
    data.issued.map((i) => i.at),
    limits.certificatesPerWeek,
    WEEK_MS,
    now,
  );
  if (all !== undefined) {
    blocks.push({ until: all, reason: `${limits.certificatesPerWeek} certificates within a week` });
  }
  const dups = data.issued.filter((i) => sameSet(i.names, names)).map((i) => i.at);
  const dup = freeAt(dups, limits.duplicateCertificatesPerWeek, WEEK_MS, now);
  if (dup !== undefined) {
    blocks.push({
      until: dup,
      reason: `${limits.duplicateCertificatesPerWeek} certificates for the same names within a week`,
    });
  }
  return blocks.sort((a, b) => b.until - a.until)[0];
}

/** Drops entries no limit looks at any more. */
export function prune(data: LedgerData, now: number): LedgerData {
  return {
    failures: data.failures.filter((f) => f.at > now - HOUR_MS),
    issued: data.issued.filter((i) => i.at > now - WEEK_MS),
  };
}

/** A stored ledger; unparsable text or entries count as empty (the CA has the last word). */
export function parseLedger(text: string | undefined): LedgerData {
  if (text === undefined) return EMPTY_LEDGER;
  try {
    const v = JSON.parse(text) as Partial<LedgerData>;
    return {
      failures: Array.isArray(v.failures)
        ? v.failures.filter((f) => typeof f?.at === "number" && typeof f.name === "string")
        : [],
      issued: Array.isArray(v.issued)
        ? v.issued.filter((i) => typeof i?.at === "number" && Array.isArray(i.names))
        : [],
    };
  } catch {
    return EMPTY_LEDGER;
  }
}

export class Ledger {
  readonly #register: Register;

  /** A path is the single host's file; a region passes its etcd register. */
  constructor(where: string | Register) {
    this.#register = typeof where === "string" ? new FileRegister(where) : where;
  }

  /** The ledger; a missing or unparsable one counts as empty, an unreadable one throws. */
  async load(): Promise<LedgerData> {
    return parseLedger((await this.#register.read())?.text);
  }

  recordFailures(names: readonly string[], at: number): Promise<void> {
    return this.#update(at, (data) => ({
      ...data,
      failures: [...data.failures, ...names.map((name) => ({ name, at }))],
    }));
  }

  recordIssued(names: readonly string[], at: number): Promise<void> {
    return this.#update(at, (data) => ({
      ...data,
      issued: [...data.issued, { names: [...names], at }],
    }));
  }

  #update(at: number, change: (data: LedgerData) => LedgerData): Promise<void> {
    return updateRegister(
      this.#register,
      (text) => `${JSON.stringify(change(prune(parseLedger(text), at)))}\n`,
    );
  }
}
