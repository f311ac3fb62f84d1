/**
 * Certificates (ARCHITECTURE.md "State on a host"): one wildcard certificate per region via ACME DNS-01, renewed in
 * the background (by one host of a region at a time, shared with the others through etcd),
 * swapped into the proxy without dropping connections.
 */
export { caaRecords, caaValue, caIdentifier } from "./caa.js";
export { caaNames, certificateNames } from "../config/names.js";
export {
  type CaaRecord,
  CloudflareProvider,
  createDnsProvider,
  type DnsProvider,
  type DnsProviderOverrides,
  Rfc2136Provider,
} from "./dns/index.js";
export { CertError, type CertErrorCode } from "./errors.js";
export { LETS_ENCRYPT_LIMITS, Ledger, type RateLimits } from "./ledger.js";
export { FileLock, type LockHandle, type RenewalLock } from "./lock.js";
export {
  type CertificateEvent,
  type CertificateListener,
  CertificateManager,
  type CertificateManagerOptions,
  type CheckOutcome,
  type ManagerStatus,
  type RenewalRecord,
} from "./manager.js";
export { openCertificateManager } from "./open.js";
export { type BackoffPolicy, DEFAULT_BACKOFF } from "./schedule.js";
export type { CertificateInfo } from "./verify.js";
