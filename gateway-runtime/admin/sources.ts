/**
 * What the admin API is given by the running gateway (cli/run.ts wires them): each absent
 * source turns its calls into a refusal that says why (ACME off, no region, no registration).
 */
import type { CheckOutcome } from "../certs/index.js";
import type { PortPolicy } from "../rpc/wire.js";
import type { RegionNodes } from "./nodes.js";
import type { RecentErrors } from "../log/index.js";
import type { AdminView } from "./view.js";

export interface AdminSources {
  /** The counters and state as they are now (asks the proxy workers when there are some). */
  view(): Promise<AdminView>;
  /** Every part serving the certificate re-reads its files. */
  reloadCertificate(): Promise<void>;
  /** Renews now whatever the expiry; absent when `core.certbot.enabled` is false. */
  renewCertificate?: () => Promise<CheckOutcome>;
  /** Writes the CAA records again; absent when `core.certbot.enabled` is false. */
  setCaa?: () => Promise<void>;
  /** The registration service's per-instance controls. */
  instances?: InstanceControl;
  /** The region's gateway nodes; absent without `core.cluster.enabled`. */
  region?: RegionNodes;
  /**
   * Stops the gateway (admin `Exit`), called once the answer is sent: `force` exits at once,
   * otherwise the clean stop of SIGTERM. Absent where nothing may stop the process (tests).
   */
  exit?: (force: boolean) => void;
  /** The latest error log lines, for the dashboard. */
  recentErrors?: RecentErrors;
  /** This gateway's version, for the dashboard. */
  version?: string;
}

/** What the per-instance calls need of the registration service (registration/service.ts). */
export interface InstanceControl {
  portPolicyView(instanceId: string): unknown;
  overridePortPolicy(instanceId: string, policy: PortPolicy | undefined): Promise<void>;
  setReady(instanceId: string, ready: boolean): Promise<void>;
  forceRemove(instanceId: string): Promise<void>;
}
