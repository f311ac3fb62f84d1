import { describe, expect, it } from "vitest";
import type { IdleSample } from "../../../bench/lib/idle.js";
import {
  controlPlaneLines,
  goals,
  type HandoverResult,
  handoverLines,
  idleRows,
  loadRows,
  median,
  pairedRatio,
  routeRow,
} from "../../../bench/lib/report.js";
import { LOAD_SCENARIOS, type Sample, type ScenarioId } from "../../../bench/lib/scenarios.js";

const scenario = (id: ScenarioId) => {
  const s = LOAD_SCENARIOS.find((x) => x.id === id);
  if (!s) throw new Error(`no scenario ${id}`);
  return s;
};

function sample(cpuUsPerOp: number, extra: Partial<Sample> = {}): Sample {
  return {
    ops: 1000,
    seconds: 10,
    bytes: 0,
    errors: 0,
    p50Us: 100,
    p99Us: 200,
    handshakes: 1000,
    resumed: 0,
    throughput: 100,
    cpuUsPerOp,
    proxyUtil: 0.5,
    proxyCoreBusy: 0.5,
    clientCoreBusy: 0.9,
    ...extra,
  };
}

describe("bench report", () => {
  it("takes the median of finite values and ignores the rest", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([Number.NaN, 5])).toBe(5);
    expect(median([])).toBeNaN();
  });

  it("states the control plane's figures: registration p50/p99, one apply at N peers, state load", () => {
    const lines = controlPlaneLines({
      count: 4000,
      concurrency: 128,
      batchMs: 200,
      registration: {
        perSecond: 509.8,
        p50Ms: 240.8,
        p99Ms: 273.4,
        wgApplies: 32,
        stateWrites: 32,
      },
      wg: { peers: 4000, syncconfNoChangeMs: 34.3, syncconfFromEmptyMs: 317.4 },
      state: { bytes: 967_783, loadMs: 16.1 },
    });
    expect(lines).toEqual([
      "register 4000 CVMs, 128 in flight: 509.8/s, latency p50 240.8 ms, p99 273.4 ms (WireGuard batch window 200 ms); 32 wg applies, 32 state writes",
      "wg syncconf at 4000 peers: 34.3 ms with no change, 317.4 ms from empty",
      "state at 4000 instances: 945 KiB, loaded in 16.1 ms",
    ]);
  });

  it("states a hand-over's failures, gaps and drain plainly, a generation left running too", () => {
    const phase = { attempts: 800, failed: 0, errors: {}, connectP99Ms: 300 };
    const result: HandoverResult = {
      connectLoop: {
        perSecond: 200,
        restart: {
          handovers: 2,
          newServesMs: [380, 390],
          longestGapMs: [370, 385],
          during: { ...phase, failed: 2, errors: { ECONNRESET: 2 } },
        },
        startFirst: { handovers: 2, newServesMs: [400, 410], longestGapMs: [9, 11], during: phase },
        outside: { ...phase, attempts: 4000, connectP99Ms: 8, longestGapMs: 12 },
        oldGenerationGoneMs: [120, null],
      },
      drain: {
        streams: 200,
        rssAtDrainStartMiB: { total: 170, primary: 80, workers: 90 },
        rssWhileDrainingMiB: { median: 90, max: 91 },
        cpuWhileDrainingPercent: 3,
        cutWhileDraining: 0,
        oldGenerationExited: false,
        exitAfterLastCloseMs: null,
      },
    };
    const lines = handoverLines(result);
    expect(lines[0]).toBe(
      'as the unit restarts (old main SIGTERMed and gone, then the next started), 2× at 200 new connections/s: 2 of 800 failed ({"ECONNRESET":2}); longest gap between accepts 370, 385 ms (the new generation served after 380, 390 ms); connect p99 300 ms during, 8 ms outside',
    );
    expect(lines[1]).toContain("0 of 800 failed; longest gap between accepts 9, 11 ms");
    expect(lines[2]).toContain("longest gap between accepts 12 ms; old generations NOT all gone");
    expect(lines[3]).toBe(
      "a generation draining 200 streams: RSS 170 MiB at drain start (primary 80, worker 90), 90 MiB while draining (max 91), CPU 3 % of a core; 0 streams cut; did NOT exit after its streams closed",
    );
  });

  it("pairs ours with base round by round, so drift between rounds cancels out", () => {
    // Round 2 ran on a busier machine: both sides slower, the ratio the same.
    const ours = [sample(450), sample(900), sample(470)];
    const base = [sample(500), sample(1000), sample(500)];
    expect(pairedRatio(ours, base)).toBe("0.90× (0.90-0.94, 3 rounds)");
    expect(pairedRatio(ours.slice(0, 2), base)).toBe("0.90× (0.90-0.90, 2 rounds)");
    expect(pairedRatio(ours, undefined)).toBeUndefined();
    expect(pairedRatio([sample(Number.NaN)], [sample(1)])).toBeUndefined();
  });

  it("gives each target its median CPU per operation, the spread, and the ratio to HAProxy", () => {
    const rows = loadRows(
      scenario("a"),
      new Map([
        ["haproxy", [sample(300), sample(320), sample(280)]],
        ["ours", [sample(450), sample(600), sample(500)]],
      ]),
    );
    const ours = rows.find((r) => r.target === "ours");
    expect(ours?.cpuUsPerOp).toBe(500);
    expect(ours?.spread).toBeCloseTo(150 / 500);
    expect(ours?.ratioToHaproxy).toBeCloseTo(500 / 300);
    expect(rows.find((r) => r.target === "haproxy")?.ratioToHaproxy).toBe(1);
  });

  it("measures (f) as latency added over direct and compares that with HAProxy's", () => {
    const p = (p50Us: number, p99Us: number) => sample(50, { p50Us, p99Us });
    const rows = loadRows(
      scenario("f"),
      new Map([
        ["direct", [p(20, 30)]],
        ["haproxy", [p(120, 230)]],
        ["ours", [p(110, 430)]],
      ]),
    );
    const ours = rows.find((r) => r.target === "ours");
    expect([ours?.addedP50Us, ours?.addedP99Us]).toEqual([90, 400]);
    expect(ours?.ratioToHaproxy).toBeCloseTo(90 / 100);
  });

  it("judges every goal against its own limit, and an absent figure as not measured", () => {
    const idle = (bytesPerConn: number): IdleSample => ({
      connections: 5000,
      rssBefore: 0,
      rssAfter: bytesPerConn * 5000,
      bytesPerConn,
    });
    const rows = [
      ...loadRows(
        scenario("a"),
        new Map([
          ["haproxy", [sample(300)]],
          ["ours", [sample(300)]], // exactly 1.0×: met
        ]),
      ),
      ...loadRows(
        scenario("c"),
        new Map([
          ["haproxy", [sample(15)]],
          ["ours", [sample(12.3)]], // 0.82×: missed (goal 0.8×)
        ]),
      ),
      ...idleRows(
        new Map([
          ["haproxy", [idle(15 * 1024)]],
          ["ours", [idle(16 * 1024)]],
        ]),
      ),
      routeRow([1.9e6, 2.1e6, 2.2e6], [5e6]),
    ];
    const verdict = Object.fromEntries(goals(rows).map((g) => [g.text.slice(0, 3), g.met]));
    expect(verdict).toEqual({
      "(a)": true,
      "(b)": null,
      "(c)": false,
      "(d)": null,
      "(f)": null,
      "(g)": true,
      "(h)": true,
    });
  });
});
