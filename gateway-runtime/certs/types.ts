/** The manager's public types: options, events, status, check outcomes. */
import type { GatewayConfig } from "../config/index.js";
import type { Logger } from "../log/index.js";
import type { DnsProviderOverrides } from "./dns/index.js";
import type { DnsProvider } from "./dns/provider.js";
import type { CertError, CertErrorCode } from "./errors.js";
import type { Ledger, RateLimits } from "./ledger.js";
import type { RenewalLock } from "./lock.js";
import type { SharedRegister } from "./region.js";
import type { BackoffPolicy, RenewReason } from "./schedule.js";
import type { CertificateInfo } from "./verify.js";

export interface CertificateManagerOptions {
  /** Uses `core.certbot` and `core.proxy.base_domain`. */
  readonly config: GatewayConfig;
  readonly log: Logger;
  /** The DNS provider; default: the one `core.certbot.dns_provider` names. */
  readonly dns?: DnsProvider;
  readonly dnsOverrides?: DnsProviderOverrides;
  /** Default: a FileLock at `<workdir>/renew.lock`, stale after 2 x renew_timeout + 1 min. */
  readonly lock?: RenewalLock;
  /** Default: a Ledger on `<workdir>/ledger.json`; a region's is in etcd. */
  readonly ledger?: Ledger;
  /**
   * The region's certificate (`core.cluster`): the host that renews publishes the pair here,
   * and every host takes a newer valid one from it (region.ts). Without it the host is alone.
   */
  readonly shared?: SharedRegister;
  /** This host's name in what it publishes. @default hostname() */
  readonly node?: string;
  /** Called by `stop()` last: closes what was opened for this manager (a region's etcd client). */
  readonly dispose?: () => Promise<void>;
  /** @default LETS_ENCRYPT_LIMITS */
  readonly limits?: RateLimits;
  /** @default DEFAULT_BACKOFF (1 min doubling to 1 h) */
  readonly backoff?: BackoffPolicy;
  /** Archive directories kept. @default 10 */
  readonly keepArchives?: number;
  /** Bound on one ACME request. @default 30000 */
  readonly requestTimeoutMs?: number;
  /** Next check when another node holds the lock. @default min(renew_interval, 60 s) */
  readonly lockRetryMs?: number;
  readonly now?: () => number;
}

/** What listeners get when a new certificate is live. */
export interface CertificateEvent {
  readonly certFile: string;
  readonly keyFile: string;
  readonly info: CertificateInfo;
}

export type CertificateListener = (event: CertificateEvent) => unknown;

export interface RenewalRecord {
  readonly at: Date;
  readonly ok: boolean;
  readonly error?: string;
  readonly code?: CertErrorCode;
}

export interface ManagerStatus {
  readonly notAfter?: Date;
  readonly serial?: string;
  readonly lastRenewal?: RenewalRecord;
  /** The latest renewal this process completed (not kept across restarts). */
  readonly lastSuccess?: Date;
  readonly nextCheck: Date | undefined;
  /** Consecutive failed runs (0 after a success). */
  readonly failures: number;
}

export type CheckOutcome =
  | { readonly action: "none" | "locked" | "renewed"; readonly reason: RenewReason }
  | {
      readonly action: "failed" | "rate-limited";
      readonly reason: RenewReason;
      readonly error: CertError;
    };
