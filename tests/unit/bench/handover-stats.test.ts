import { describe, expect, it } from "vitest";
import {
  type Attempt,
  cpuPercent,
  type GroupSample,
  groupRss,
  inWindow,
  longestGap,
  phaseStats,
} from "../../../bench/handover/stats.js";

describe("scenario (u)'s arithmetic", () => {
  it("the longest gap counts the silence that straddles the window's start whole", () => {
    // Accepts every 5 ms, then nothing from 100 to 460, then every 5 ms again.
    const times = [90, 95, 100, 460, 465, 470];
    expect(longestGap(times, 200, 300)).toEqual({ ms: 360, atMs: 100 });
    expect(longestGap(times, 90, 500)).toEqual({ ms: 360, atMs: 100 });
    // In any order.
    expect(longestGap([...times].reverse(), 200, 300).ms).toBe(360);
  });

  it("the longest gap of a window with no accept after it runs to the window's end", () => {
    expect(longestGap([10, 20], 15, 100)).toEqual({ ms: 80, atMs: 20 });
    expect(longestGap([], 15, 100)).toEqual({ ms: 85, atMs: 15 });
  });

  it("a connection is in a window from its start, up to but not at its end", () => {
    const windows = [{ fromMs: 10, toMs: 20 }];
    expect([9, 10, 19.9, 20].map((t) => inWindow(t, windows))).toEqual([false, true, true, false]);
  });

  it("phase figures count failures by cause and time only the successful connections", () => {
    const ok = (handshakeMs: number): Attempt => ({
      startMs: 0,
      tcpMs: 0.2,
      handshakeMs,
      ok: true,
    });
    const attempts: Attempt[] = [
      ...Array.from({ length: 99 }, (_, k) => ok(k + 1)),
      ok(400),
      { startMs: 0, ok: false, error: "ECONNREFUSED" },
      { startMs: 0, ok: false, error: "ECONNREFUSED" },
      { startMs: 0, handshakeMs: 3, ok: false, error: "status HTTP/1.1 502" },
    ];
    const s = phaseStats(attempts);
    expect(s).toMatchObject({
      attempts: 103,
      failed: 3,
      errors: { ECONNREFUSED: 2, "status HTTP/1.1 502": 1 },
      connectP50Ms: 51,
      connectP99Ms: 400,
      connectMaxMs: 400,
      tcpP99Ms: 0.2,
    });
  });

  it("CPU share counts the processes alive in both samples, in % of one core", () => {
    const sample = (atMs: number, procs: [number, number, number][]): GroupSample => ({
      atMs,
      procs: new Map(procs.map(([pid, ticks, rssBytes]) => [pid, { ticks, rssBytes }])),
    });
    // pid 1 (the primary) exits in between; pid 2 spends 50 ticks of 100 per second over 2 s.
    const a = sample(0, [
      [1, 500, 100],
      [2, 1000, 200],
    ]);
    const b = sample(2000, [[2, 1050, 300]]);
    expect(cpuPercent(a, b, 100)).toBe(25);
    expect(cpuPercent(a, a, 100)).toBeNaN();
    expect(groupRss(a)).toBe(300);
  });
});
