/**
 * What the admin API reads: the data plane's counters (summed over proxy workers), the
 * instance directory, and the certificate manager when ACME is on. Pure data in, so the
 * metrics and the status answers are plain functions of it.
 */
import type { ManagerStatus } from "../certs/index.js";
import type { ProxySnapshot } from "../proxy/index.js";
import type { Instance } from "../registry/index.js";

export interface AdminView {
  readonly nowMs: number;
  readonly startedAtMs: number;
  readonly baseDomain: string;
  /** An instance counts as healthy while its last handshake is younger than this. */
  readonly healthyHandshakeAgeMs: number;
  readonly proxy: ProxySnapshot;
  /** Processes serving the data plane, and how many of them answered for `proxy`. */
  readonly workers: { readonly running: number; readonly answered: number };
  readonly instances: readonly Instance[];
  /** Absent when `core.certbot.enabled` is false. */
  readonly certbot?: ManagerStatus;
}
