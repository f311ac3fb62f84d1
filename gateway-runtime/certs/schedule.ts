/**
 * When to renew, how long to back off after a failure, when to warn about expiry. Pure.
 */
import { type CertificateInfo, missingNames } from "./verify.js";

export interface BackoffPolicy {
  /** Delay after the first failure; doubles with each further one. */
  readonly initialMs: number;
  readonly maxMs: number;
}

/** 1 min, 2 min, 4 min ... capped at 1 h. Five failures take 31 minutes, so with the CA's
 * "5 failed validations per hostname per hour" the sixth attempt already falls after the hour;
 * the ledger enforces the limit in any case. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 60_000, maxMs: 3_600_000 };

export const EXPIRY_WARNING_MS = 7 * 24 * 3_600_000;
export const EXPIRY_WARNING_EVERY_MS = 24 * 3_600_000;

/** Largest delay a Node timer takes. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Delay before the next attempt after `failures` consecutive failures (1 or more). */
export function backoffDelay(failures: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  if (failures < 1) return 0;
  const exp = Math.min(failures - 1, 40);
  return Math.min(policy.maxMs, policy.initialMs * 2 ** exp);
}

export type RenewReason = "none" | "missing" | "unreadable" | "names" | "expiring" | "forced";

/** Whether the live certificate must be replaced now, and why. */
export function renewalReason(
  info: CertificateInfo | undefined,
  names: readonly string[],
  now: number,
  renewBeforeMs: number,
): RenewReason {
  if (info === undefined) return "missing";
  if (missingNames(info, names).length > 0) return "names";
  if (info.notAfter.getTime() - now <= renewBeforeMs) return "expiring";
  return "none";
}

/** Whether to log the expiry warning now (inside 7 days, at most once a day). */
export function expiryWarningDue(
  notAfter: Date,
  now: number,
  lastWarnedAt: number | undefined,
): boolean {
  if (notAfter.getTime() - now > EXPIRY_WARNING_MS) return false;
  return lastWarnedAt === undefined || now - lastWarnedAt >= EXPIRY_WARNING_EVERY_MS;
}
