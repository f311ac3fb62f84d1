import { describe, expect, it } from "vitest";
import { Checker, type CheckerSettings } from "../../../gateway-runtime/agent/checker.js";

const S: CheckerSettings = {
  handshakeTimeoutMs: 180_000,
  handshakeWaitMs: 15_000,
  retryMs: 5_000,
  maxRetryMs: 120_000,
};
const T0 = 1_700_000_000_000; // a whole second

const obs = (now: number, latestHandshakeMs = 0, linkUp = true) => ({
  now,
  configured: true,
  linkUp,
  latestHandshakeMs,
});

/** A checker that registered and configured the tunnel at T0. */
function configured(): Checker {
  const c = new Checker(S);
  expect(c.decide({ now: T0, configured: false, linkUp: false, latestHandshakeMs: 0 })).toEqual({
    kind: "register",
    reason: "not registered yet",
  });
  c.recordConfigure(T0, true);
  return c;
}

describe("Checker", () => {
  it("retries a failed first registration with a doubling backoff, capped", () => {
    const c = new Checker(S);
    const unregistered = (now: number) =>
      c.decide({ now, configured: false, linkUp: false, latestHandshakeMs: 0 })?.kind;
    let t = T0;
    const delays: number[] = [];
    for (let k = 0; k < 7; k++) {
      expect(unregistered(t)).toBe("register");
      c.recordConfigure(t, false);
      delays.push(c.retryDelay());
      expect(unregistered(t + c.retryDelay() - 1)).toBeUndefined();
      t += c.retryDelay();
    }
    expect(delays).toEqual([5_000, 10_000, 20_000, 40_000, 80_000, 120_000, 120_000]);
    c.recordConfigure(t, true);
    expect(c.retryDelay()).toBe(0);
  });

  it("does nothing while handshakes are fresh", () => {
    const c = configured();
    for (let s = 1; s <= 600; s += 10) {
      // a healthy tunnel re-handshakes every 2 minutes
      const hs = T0 + Math.floor(s / 120) * 120_000;
      expect(c.decide(obs(T0 + s * 1000, hs))).toBeUndefined();
    }
  });

  it("forces a handshake once the tunnel is silent for the timeout, and is content when answered", () => {
    const c = configured();
    expect(c.decide(obs(T0 + 1000, T0))).toBeUndefined();
    expect(c.decide(obs(T0 + 179_999, T0))).toBeUndefined();
    expect(c.decide(obs(T0 + 180_000, T0))?.kind).toBe("rehandshake");
    c.recordRehandshake(T0 + 180_400);
    // The forced handshake is answered in the same (whole) second: the dump says T0 + 180 s.
    expect(c.decide(obs(T0 + 181_000, T0 + 180_000))).toBeUndefined();
    expect(c.decide(obs(T0 + 300_000, T0 + 180_000))).toBeUndefined();
    expect(c.decide(obs(T0 + 360_000, T0 + 180_000))?.kind).toBe("rehandshake");
  });

  it("re-registers when a forced handshake stays unanswered, once per wait, then per backoff", () => {
    const c = configured();
    expect(c.decide(obs(T0 + 200_000, T0))?.kind).toBe("rehandshake");
    c.recordRehandshake(T0 + 200_000);
    // After a force the dump shows no handshake (the peer is new); the old one still counts.
    expect(c.decide(obs(T0 + 214_999, 0))).toBeUndefined();
    const again = c.decide(obs(T0 + 215_000, 0));
    expect(again?.kind).toBe("register");
    expect(again?.reason).toContain("the gateway may have forgotten this instance");
    c.recordConfigure(T0 + 215_000, false);
    expect(c.decide(obs(T0 + 219_999, 0))).toBeUndefined();
    expect(c.decide(obs(T0 + 220_000, 0))?.kind).toBe("register");
    c.recordConfigure(T0 + 220_000, true);
    // A new configuration gets a full timeout to handshake.
    expect(c.decide(obs(T0 + 220_000 + 179_000, 0))).toBeUndefined();
    // Still nothing: its own configuration forced a handshake, so it registers straight away.
    expect(c.decide(obs(T0 + 220_000 + 180_000, 0))?.kind).toBe("register");
  });

  it("a configuration that never handshakes registers again after the timeout", () => {
    const c = configured();
    expect(c.decide(obs(T0 + 179_000))).toBeUndefined();
    expect(c.decide(obs(T0 + 180_000))?.kind).toBe("register");
  });

  it("rebuilds a vanished interface, with the same backoff", () => {
    const c = configured();
    expect(c.decide(obs(T0 + 5_000, T0, false))).toEqual({
      kind: "rebuild",
      reason: "the WireGuard interface is gone",
    });
    c.recordConfigure(T0 + 5_000, false);
    expect(c.decide(obs(T0 + 9_999, T0, false))).toBeUndefined();
    expect(c.decide(obs(T0 + 10_000, T0, false))?.kind).toBe("rebuild");
  });

  it("with a short timeout (the e2e settings) keeps forcing handshakes on a live tunnel, never registering", () => {
    const c = new Checker({ ...S, handshakeTimeoutMs: 4_000 });
    c.decide({ now: T0, configured: false, linkUp: false, latestHandshakeMs: 0 });
    c.recordConfigure(T0, true);
    let handshake = T0;
    for (let t = T0; t < T0 + 60_000; t += 500) {
      const action = c.decide(obs(t, handshake));
      expect(action?.kind ?? "none").not.toBe("register");
      if (action?.kind === "rehandshake") {
        c.recordRehandshake(t);
        handshake = t - (t % 1000); // answered at once
      }
    }
  });

  it("refreshes a healthy tunnel once per period after its last configuration, never a silent one", () => {
    const c = new Checker({ ...S, refreshMs: 600_000 });
    c.decide({ now: T0, configured: false, linkUp: false, latestHandshakeMs: 0 });
    c.recordConfigure(T0, true);
    const fresh = (now: number) => obs(now, now - 30_000);
    expect(c.decide(fresh(T0 + 599_999))).toBeUndefined();
    expect(c.decide(fresh(T0 + 600_000))).toEqual({
      kind: "refresh",
      reason: "periodic: learning the region's current hosts",
    });
    c.recordRefresh(T0 + 600_000);
    expect(c.decide(fresh(T0 + 1_199_999))).toBeUndefined();
    expect(c.decide(fresh(T0 + 1_200_000))?.kind).toBe("refresh");
    // A new configuration restarts the period.
    c.recordConfigure(T0 + 1_300_000, true);
    expect(c.decide(fresh(T0 + 1_899_999))).toBeUndefined();
  });

  it("leaves a silent tunnel to the handshake checks when a refresh is due", () => {
    const c = new Checker({ ...S, refreshMs: 600_000 });
    c.recordConfigure(T0, true);
    expect(c.decide(obs(T0 + 600_000, T0 + 400_000))?.kind).toBe("rehandshake");
  });

  it("never refreshes with a period of 0 or without one", () => {
    for (const settings of [{ ...S, refreshMs: 0 }, S]) {
      const c = new Checker(settings);
      c.recordConfigure(T0, true);
      expect(c.decide(obs(T0 + 86_400_000, T0 + 86_400_000 - 1_000))).toBeUndefined();
    }
  });
});
