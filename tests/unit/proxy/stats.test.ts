import { describe, expect, it } from "vitest";
import { mergeSnapshots, ProxyStats, snapshotOf } from "../../../gateway-runtime/proxy/stats.js";

const cert = { serial: "0A", notAfter: new Date(Date.UTC(2027, 0, 1)) };

function statsOf(steps: (s: ProxyStats) => void): ProxyStats {
  const s = new ProxyStats();
  steps(s);
  return s;
}

describe("ProxyStats snapshots", () => {
  it("copies the counters into plain data that survives structured cloning", () => {
    const stats = statsOf((s) => {
      s.opened("a1");
      s.opened("a1");
      s.closed("a1", 100, 2000);
      s.rejected("E_LIMIT_APP", "a1");
      s.rejected("E_ROUTE_UNKNOWN_APP");
    });
    const snap = snapshotOf(
      stats,
      { open: new Map([["i1", 1]]), connectFailures: new Map([["i2", 4]]) },
      cert,
    );
    expect(structuredClone(snap)).toEqual({
      apps: {
        a1: {
          active: 1,
          total: 2,
          bytesToBackend: 100,
          bytesToClient: 2000,
          rejected: { E_LIMIT_APP: 1 },
        },
      },
      rejected: { E_LIMIT_APP: 1, E_ROUTE_UNKNOWN_APP: 1 },
      instances: { i1: 1 },
      connectFailures: { i2: 4 },
      certificates: [{ serial: "0A", notAfterMs: cert.notAfter.getTime() }],
      timings: [],
    });
    stats.opened("a1");
    expect(snap.apps.a1?.active).toBe(1); // a copy, not a view
  });

  it("sums several workers' snapshots and keeps each one's certificate", () => {
    const one = snapshotOf(
      statsOf((s) => {
        s.opened("a1");
        s.rejected("E_LIMIT_APP", "a1");
      }),
      { open: new Map([["i1", 1]]), connectFailures: new Map([["i3", 1]]) },
      cert,
    );
    const two = snapshotOf(
      statsOf((s) => {
        s.opened("a1");
        s.closed("a1", 5, 7);
        s.opened("b2");
        s.rejected("E_LIMIT_APP", "a1");
        s.rejected("E_LIMIT_IP");
      }),
      {
        open: new Map([
          ["i1", 2],
          ["i2", 1],
        ]),
        connectFailures: new Map([
          ["i3", 2],
          ["i4", 5],
        ]),
      },
      { serial: "0B", notAfter: cert.notAfter },
    );
    expect(mergeSnapshots([one, two])).toEqual({
      apps: {
        a1: {
          active: 1,
          total: 2,
          bytesToBackend: 5,
          bytesToClient: 7,
          rejected: { E_LIMIT_APP: 2 },
        },
        b2: { active: 1, total: 1, bytesToBackend: 0, bytesToClient: 0, rejected: {} },
      },
      rejected: { E_LIMIT_APP: 2, E_LIMIT_IP: 1 },
      instances: { i1: 3, i2: 1 },
      connectFailures: { i3: 3, i4: 5 },
      certificates: [
        { serial: "0A", notAfterMs: cert.notAfter.getTime() },
        { serial: "0B", notAfterMs: cert.notAfter.getTime() },
      ],
      timings: [],
    });
    expect(mergeSnapshots([])).toEqual({
      apps: {},
      rejected: {},
      instances: {},
      connectFailures: {},
      certificates: [],
      timings: [],
    });
    expect(one.apps.a1?.total).toBe(1); // the inputs are left as they were
  });
});
