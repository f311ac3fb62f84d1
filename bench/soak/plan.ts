/**
 * What the soak (scenario (s), `bench/soak/soak.ts`) runs, in one place: the traffic mix, the
 * registration churn, the gateway settings that differ from a host's, and the phases. A soak
 * looks for growth over time, not for limits: the rates load the gateway moderately, so that a
 * shared 2-core machine keeps up for the whole run and every connection that starts also ends.
 * Numbers measured with these settings go in BENCHMARKS.md "Soak (s)".
 */

/** Uniform in [lo, hi]. */
export type Range = readonly [number, number];

export const MIX = {
  /** New terminated connections (half of them resuming a session), keep-alive requests each. */
  term: { perSecond: 20, maxInFlight: 64, requests: [1, 10] as Range },
  /** New passthrough connections (TLS end to end with the backend); now and then 1 MiB. */
  pass: { perSecond: 10, maxInFlight: 32, requests: [1, 3] as Range, downloadEvery: 50 },
  /**
   * Long-lived streams, terminated and passthrough in turn, kept at `concurrent`: a request
   * every `gapSeconds`, some of them a 1 MiB download read slowly; at the end of their life
   * most close, `resetShare` of them are reset.
   */
  long: {
    concurrent: 24,
    lifeSeconds: [20, 240] as Range,
    gapSeconds: [1, 5] as Range,
    slowDownloadEvery: 8,
    resetShare: 1 / 3,
  },
  /**
   * Connections that stop mid-handshake, in turn: silent then closed, half a ClientHello then
   * closed, a whole one (terminated or passthrough name) closed at the server's first bytes,
   * and half a ClientHello left for the gateway's handshake timeout to cut.
   */
  stall: { perSecond: 4, maxInFlight: 64, waitBoundSeconds: 15 },
  /** HTTP/2 (the `g` route, ALPN h2 to an h2c backend): sessions kept at `sessions`. */
  h2: { sessions: 4, lifeSeconds: [30, 180] as Range, perSecond: 10, streams: 4 },
} as const;

export type TrafficKind = keyof typeof MIX;
export const TRAFFIC_KINDS = Object.keys(MIX) as TrafficKind[];

/**
 * Registrations over the RPC port every `everyMs`, at most `maxInFlight` at once: while fewer
 * than `minLive` instances are registered a new one, else a new one, a re-registration (a
 * rebooted CVM: same instance, new WireGuard key) or an operator's `RemoveInstance` by
 * `weights`, and otherwise nothing; instances not registered again are recycled.
 */
export const CHURN = {
  everyMs: 500,
  maxInFlight: 4,
  minLive: 20,
  apps: 8,
  weights: { register: 0.45, reregister: 0.25, remove: 0.2 },
} as const;

/**
 * The gateway: the lab's two proxy workers; recycling much faster than a host's (10 h), so
 * instances are recycled all along the run, yet slower than WireGuard renews a live peer's
 * handshake (every 2 minutes), or the traffic's own instance would be recycled too; a short
 * drain so that the stop is quick.
 */
export const GATEWAY = {
  workers: 2,
  recycleInterval: "10s",
  recycleTimeoutMs: 180_000,
  handshakePollInterval: "2s",
  drainTimeout: "5s",
} as const;

export interface Phases {
  /** Load before the "start" figures: heaps, caches and pools grow to their working size. */
  readonly warmupMs: number;
  readonly sampleEveryMs: number;
  /** After the load stops, before the final descriptor count. */
  readonly settleMs: number;
}

/** A fifth of the run as warm-up, at most 3 minutes; samples every 5 s (2 s in short runs). */
export function phases(minutes: number): Phases {
  const ms = minutes * 60_000;
  return {
    warmupMs: Math.min(3 * 60_000, Math.round(ms / 5)),
    sampleEveryMs: minutes >= 10 ? 5000 : 2000,
    settleMs: 10_000,
  };
}

/** The soak's length unless `--soak-minutes` or `--quick` says otherwise. */
export const SOAK_MINUTES = 30;

/** Where a run writes: `soak.json` for the default length, else one file per length. */
export function resultName(minutes: number, quick: boolean): string {
  if (quick) return "soak-quick.json";
  return minutes === SOAK_MINUTES ? "soak.json" : `soak-${minutes}min.json`;
}
