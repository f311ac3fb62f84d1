import { describe, expect, it } from "vitest";
import {
  corePercent,
  cpuPerChangeUs,
  groupTicksTotal,
  type Sample,
  windowCpu,
} from "../../../bench/engine-spike/stats.js";
import type { Stat } from "../../../bench/lib/procs.js";

const stat = (pid: number, ticks: number, childTicks = 0): Stat => ({
  pid,
  pgrp: 10,
  state: "S",
  ticks,
  childTicks,
});

const sample = (atMs: number, ticks: number): Sample => ({ atMs, ticks, rssBytes: 0, procs: 2 });

describe("the engine spike's arithmetic", () => {
  it("a group's ticks count the leader's reaped children, no one else's", () => {
    expect(groupTicksTotal([stat(10, 5, 7), stat(11, 3, 100)], 10)).toBe(15);
    // A worker exits and is reaped: its ticks move to the leader's, the sum stays.
    expect(groupTicksTotal([stat(10, 5, 10)], 10)).toBe(15);
    expect(groupTicksTotal([], 10)).toBe(0);
  });

  it("a window's CPU runs from the last sample at its start to the first at its end", () => {
    const s = [sample(0, 0), sample(100, 10), sample(200, 30), sample(300, 60)];
    expect(windowCpu(s, 150, 250, 100)).toEqual({ cpuUs: 500_000, wallMs: 200 });
    expect(windowCpu(s, 100, 200, 100)).toEqual({ cpuUs: 200_000, wallMs: 100 });
    expect(corePercent(windowCpu(s, 100, 200, 100))).toBe(200);
    expect(windowCpu(s, 0, 400, 100).cpuUs).toBeNaN();
    expect(windowCpu([], 0, 1, 100).cpuUs).toBeNaN();
  });

  it("a change costs what its window used above the rate without changes", () => {
    const outside = [
      { cpuUs: 100_000, wallMs: 1000 },
      { cpuUs: 300_000, wallMs: 1000 },
    ];
    // 200 ms/s outside; 2 s of changes at that rate would use 400 ms, they used 500 ms.
    expect(cpuPerChangeUs({ cpuUs: 500_000, wallMs: 2000 }, outside, 10)).toBe(10_000);
    expect(cpuPerChangeUs({ cpuUs: 500_000, wallMs: 2000 }, [], 10)).toBeNaN();
    expect(cpuPerChangeUs({ cpuUs: 500_000, wallMs: 2000 }, outside, 0)).toBeNaN();
  });
});
