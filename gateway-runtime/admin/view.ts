/**
 * What the admin API reads: the data plane's counters (summed over proxy workers), the
 * instance directory, and the certificate manager when ACME is on. Pure data in, so the
 * metrics and the status answers are plain functions of it.
 */
import type { ManagerStatus } from "../certs/index.js";
import type { MetricJson, ProxySnapshot } from "../proxy/index.js";
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
  /** The certificate the registration RPC port serves; absent when it is not running. */
  readonly rpcCertificate?: { readonly serial: string; readonly notAfterMs: number };
  /** This process's own histograms (registration latency), as prom-client JSON. */
  readonly timings?: readonly MetricJson[];
  /** Admin requests refused for their credentials since start. */
  readonly adminAuthFailures?: number;
}
