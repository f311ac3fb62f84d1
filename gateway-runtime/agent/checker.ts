/**
 * When the agent acts: a pure function of what it observes, so it is tested without a gateway
 * or an interface. Modelled on dstack's `gateway_checker.rs` (dstack-util), which re-registers
 * when the tunnel has not handshaken for 180 s. We add a cheaper first step: a stale tunnel
 * first gets a forced handshake (its gateway peer is removed and re-added, which drops the old
 * session; the keepalive then starts a new one). That alone heals a gateway that restarted
 * with its state intact. Only if that forced handshake stays unanswered for `handshakeWaitMs`
 * has the gateway forgotten us (or changed its key): then we register again.
 *
 * WireGuard reports handshakes in whole seconds; a force is "answered" by a handshake in its
 * second or later.
 */

export interface CheckerSettings {
  /** A tunnel with no handshake for this long is stale. dstack: 180 s. */
  readonly handshakeTimeoutMs: number;
  /** How long a forced handshake may stay unanswered before re-registering. */
  readonly handshakeWaitMs: number;
  /** First retry after a failed registration or rebuild; doubles per failure. */
  readonly retryMs: number;
  readonly maxRetryMs: number;
  /**
   * A healthy tunnel registers again this long after its last configuration, to learn the
   * region's current hosts: a CVM that registered while a host was down or draining otherwise
   * never gets a peer for it. 0: never.
   */
  readonly refreshMs?: number;
}

export const DEFAULT_CHECKER: CheckerSettings = {
  handshakeTimeoutMs: 180_000,
  handshakeWaitMs: 15_000,
  retryMs: 5_000,
  maxRetryMs: 120_000,
  refreshMs: 600_000,
};

export interface Observation {
  /** ms since the epoch. */
  readonly now: number;
  /** A registration succeeded and its tunnel config exists. */
  readonly configured: boolean;
  /** The interface exists (and, in userspace, its wireguard-go runs). */
  readonly linkUp: boolean;
  /** Latest handshake over the gateway peers, ms since the epoch; 0 = none. */
  readonly latestHandshakeMs: number;
}

export type ActionKind = "register" | "rebuild" | "rehandshake" | "refresh";

export interface Action {
  readonly kind: ActionKind;
  readonly reason: string;
}

const second = (ms: number) => ms - (ms % 1000);

export class Checker {
  readonly #s: CheckerSettings;
  /** Latest handshake seen since the last configuration (the dump shows 0 after a force). */
  #lastHandshake = 0;
  #configuredAt = 0;
  /** The last configuration or refresh, successful or not: refreshes are spaced from it. */
  #refreshedAt = 0;
  /** When a force (rehandshake, or a fresh configuration) went out that no handshake answered yet. */
  #pendingForce: number | undefined;
  #lastAttempt: number | undefined;
  #failures = 0;

  constructor(settings: CheckerSettings = DEFAULT_CHECKER) {
    this.#s = settings;
  }

  /** Failures in a row of registration or rebuild. */
  get failures(): number {
    return this.#failures;
  }

  /** Minimum wait after the last attempt before the next one: 0 after a success. */
  retryDelay(): number {
    if (this.#failures === 0) return 0;
    const factor = 2 ** Math.min(this.#failures - 1, 20);
    return Math.min(this.#s.maxRetryMs, this.#s.retryMs * factor);
  }

  decide(obs: Observation): Action | undefined {
    const { now } = obs;
    if (obs.latestHandshakeMs > this.#lastHandshake) this.#lastHandshake = obs.latestHandshakeMs;
    if (this.#pendingForce !== undefined && this.#lastHandshake >= second(this.#pendingForce)) {
      this.#pendingForce = undefined;
    }
    const due = this.#lastAttempt === undefined || now - this.#lastAttempt >= this.retryDelay();
    if (!obs.configured) {
      return due ? { kind: "register", reason: "not registered yet" } : undefined;
    }
    if (!obs.linkUp) {
      return due ? { kind: "rebuild", reason: "the WireGuard interface is gone" } : undefined;
    }
    const silentSince = Math.max(this.#lastHandshake, this.#configuredAt);
    const silent = now - silentSince;
    if (silent < this.#s.handshakeTimeoutMs) {
      const refreshMs = this.#s.refreshMs ?? 0;
      if (refreshMs > 0 && now - this.#refreshedAt >= refreshMs) {
        return { kind: "refresh", reason: "periodic: learning the region's current hosts" };
      }
      return undefined;
    }
    const seconds = Math.round(silent / 1000);
    if (this.#pendingForce === undefined) {
      return {
        kind: "rehandshake",
        reason: `no WireGuard handshake for ${seconds} s: forcing a new one`,
      };
    }
    if (now - this.#pendingForce < this.#s.handshakeWaitMs || !due) return undefined;
    return {
      kind: "register",
      reason: `no WireGuard handshake for ${seconds} s, not even a forced one: the gateway may have forgotten this instance`,
    };
  }

  /**
   * A registration or rebuild ended. On failure `now` is when it ended; on success it is when the
   * tunnel's configuration began, since the handshake that configuration starts can complete (in
   * WireGuard's whole seconds) before the commands return, and must count as its answer.
   */
  recordConfigure(now: number, ok: boolean): void {
    this.#lastAttempt = now;
    if (!ok) {
      this.#failures += 1;
      return;
    }
    this.#failures = 0;
    this.#configuredAt = now;
    this.#refreshedAt = now;
    this.#pendingForce = now;
  }

  /**
   * A refresh ended, whatever its outcome: the tunnel it found healthy stays as it was, so a
   * failed refresh is not retried before the next period (the handshake checks cover the rest).
   */
  recordRefresh(now: number): void {
    this.#refreshedAt = now;
  }

  /** A forced handshake was started at `now` (before its commands ran). */
  recordRehandshake(now: number): void {
    this.#pendingForce = now;
  }
}
