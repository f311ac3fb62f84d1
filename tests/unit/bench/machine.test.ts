import { describe, expect, it } from "vitest";
import { MIN_FD_LIMIT, planIdle } from "../../../bench/lib/machine.js";
import { DEFAULT_TARGETS } from "../../../bench/lib/options.js";

const full = {
  only: new Set(["a", "g", "r"]),
  targetNames: new Set(DEFAULT_TARGETS),
  idleConnections: 5000,
  idleExplicit: false,
};

describe("(g)'s idle connections for the open-file limit", () => {
  it("keeps the count asked when it fits, needing 4 descriptors each with ours-haproxy", () => {
    expect(planIdle(524_288, full)).toEqual({
      count: 5000,
      asked: 5000,
      lowered: false,
      fdLimit: 524_288,
      fdsNeeded: 22_000,
    });
    const noEngine = { ...full, targetNames: new Set(["haproxy", "nginx", "ours"]) };
    expect(planIdle(20_000, noEngine)).toMatchObject({ count: 5000, fdsNeeded: MIN_FD_LIMIT });
  });

  it("lowers the default count for every target to what fits, in hundreds", () => {
    // (20,000 - 2,000) / 4 = 4,500: this machine's hard limit with ours-haproxy.
    expect(planIdle(20_000, full)).toEqual({
      count: 4500,
      asked: 5000,
      lowered: true,
      fdLimit: 20_000,
      fdsNeeded: 20_000,
    });
    expect(planIdle(19_999, full)).toMatchObject({ count: 4400, lowered: true });
  });

  it("fails up front for an explicit count that does not fit, naming the limit and what fits", () => {
    expect(() => planIdle(20_000, { ...full, idleExplicit: true })).toThrow(
      /--idle-connections 5000 does not fit the open-file limit 20000.*at most 4500 fit/,
    );
    expect(planIdle(20_000, { ...full, idleConnections: 4500, idleExplicit: true })).toMatchObject({
      count: 4500,
      lowered: false,
    });
  });

  it("leaves a limit below the floor to preflight, which fails on it", () => {
    expect(planIdle(3_900, full)).toMatchObject({ count: 5000, lowered: false, fdsNeeded: 22_000 });
  });

  it("asks nothing of the limit for (g) when (g) does not run", () => {
    const noG = { ...full, only: new Set(["a", "r"]) };
    expect(planIdle(20_000, noG)).toMatchObject({
      count: 5000,
      lowered: false,
      fdsNeeded: MIN_FD_LIMIT,
    });
  });
});
