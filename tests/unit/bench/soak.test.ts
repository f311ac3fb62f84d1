import { describe, expect, it } from "vitest";
import { phases, resultName } from "../../../bench/soak/plan.js";
import {
  type ProcessSeries,
  type ProcSample,
  resultJson,
  rssSlope,
  type SoakResult,
  slope,
  soakLines,
  summarize,
} from "../../../bench/soak/stats.js";

/** A sample every 5 s from `fromS` to `toS`, RSS from `rss(s)`, descriptors from `fds(s)`. */
function samples(
  fromS: number,
  toS: number,
  rss: (s: number) => number,
  fds: (s: number) => number = () => 30,
): ProcSample[] {
  const out: ProcSample[] = [];
  for (let s = fromS; s <= toS; s += 5) {
    out.push({ atMs: s * 1000, rssKiB: rss(s), fds: fds(s), cpuS: s / 10 });
  }
  return out;
}

// Load from 60 s to 660 s (10 min), warm-up until 180 s, a settled sample at 680 s.
const timeline = { loadStartMs: 60_000, warmEndMs: 180_000, loadEndMs: 660_000 };

describe("the soak's slope fit", () => {
  it("is the least-squares slope, NaN without two distinct x", () => {
    expect(
      slope([
        [0, 1],
        [1, 3],
        [2, 5],
      ]),
    ).toBeCloseTo(2, 12);
    // the fit through every point (0.3), not the line through the end points (0.25)
    expect(
      slope([
        [0, 10],
        [1, 12],
        [2, 11],
        [3, 13],
        [4, 11],
      ]),
    ).toBeCloseTo(0.3, 12);
    expect(slope([[3, 1]])).toBeNaN();
    expect(
      slope([
        [3, 1],
        [3, 2],
      ]),
    ).toBeNaN();
    expect(slope([])).toBeNaN();
  });

  it("gives RSS growth in KiB per minute of samples", () => {
    // 100 KiB per minute, sampled every 5 s
    expect(rssSlope(samples(0, 600, (s) => 50_000 + (100 * s) / 60))).toBeCloseTo(100, 9);
    expect(rssSlope(samples(0, 600, () => 50_000))).toBe(0);
  });
});

describe("a process's soak figures", () => {
  const leaking: ProcessSeries = {
    role: "worker",
    pid: 42,
    samples: [
      { atMs: 50_000, rssKiB: 40_000, fds: 25, cpuS: 0 },
      // a jump during the warm-up that the slope must not see, then 60 KiB per minute
      ...samples(
        65,
        175,
        () => 90_000,
        () => 80,
      ),
      ...samples(
        180,
        660,
        (s) => 100_000 + s,
        (s) => (s % 10 === 0 ? 70 : 90),
      ),
      { atMs: 680_000, rssKiB: 100_500, fds: 27, cpuS: 66 },
    ],
  };

  it("fits the slope to the samples under load after the warm-up only", () => {
    const p = summarize(leaking, timeline);
    expect(p).toBeDefined();
    expect(p?.samples).toBe(97);
    expect(p?.slopeKiBPerMin).toBeCloseTo(60, 9);
    expect(p?.lateSlopeKiBPerMin).toBeCloseTo(60, 9);
    expect(p).toMatchObject({
      role: "worker",
      pid: 42,
      rssStartKiB: 100_180,
      rssEndKiB: 100_660,
      rssMaxKiB: 100_660,
      rssSettledKiB: 100_500,
    });
  });

  it("counts descriptors before the load, at its start, at most under it, and after the settle", () => {
    expect(summarize(leaking, timeline)).toMatchObject({
      fdsBefore: 25,
      fdsStart: 70,
      fdsMaxUnderLoad: 90,
      fdsEnd: 27,
    });
  });

  it("gives CPU over the load as a share of one core", () => {
    // cpuS is s / 10 in `samples`, from 0 before the load: 66 s of CPU over 610 s
    expect(summarize(leaking, timeline)?.cpuShare).toBeCloseTo(66 / 610, 9);
  });

  it("tells growth that stops (warm-up) from growth that goes on, in the second half", () => {
    const levelling: ProcessSeries = {
      role: "primary",
      pid: 7,
      samples: [
        ...samples(180, 420, (s) => 100_000 + 10 * s),
        ...samples(425, 660, () => 104_200),
        { atMs: 670_000, rssKiB: 104_200, fds: 30, cpuS: 67 },
      ],
    };
    const p = summarize(levelling, timeline);
    expect(p?.slopeKiBPerMin).toBeGreaterThan(200);
    expect(p?.lateSlopeKiBPerMin).toBeCloseTo(0, 9);
    // not there before the load: a worker started later
    expect(p?.fdsBefore).toBeNull();
  });

  it("has no figures for a process seen fewer than twice after the warm-up or never after", () => {
    const early: ProcessSeries = { role: "worker", pid: 1, samples: samples(60, 185, () => 1) };
    expect(summarize(early, timeline)).toBeUndefined();
    const noSettle: ProcessSeries = { role: "worker", pid: 2, samples: samples(60, 660, () => 1) };
    expect(summarize(noSettle, timeline)).toBeUndefined();
  });
});

/** A made-up result, for the summary lines and the file. */
const kind = { started: 10, ok: 10, errors: 0, requests: 50, skipped: 0, errorSamples: [] };
const result: SoakResult = {
  date: "2026-12-08T00:00:00.000Z",
  minutes: 30,
  warmupMinutes: 3,
  sampleEverySeconds: 5,
  settleSeconds: 10,
  setup: {},
  machine: { cpus: 2, loadAverageStart: 1.5, loadAverageEnd: 2.25 },
  processes: [
    {
      role: "primary",
      pid: 100,
      samples: 325,
      rssStartKiB: 102_400,
      rssEndKiB: 104_448,
      rssMaxKiB: 105_000,
      slopeKiBPerMin: 75.25,
      lateSlopeKiBPerMin: Number.NaN,
      rssSettledKiB: 103_424,
      fdsBefore: 27,
      fdsStart: 28,
      fdsMaxUnderLoad: 34,
      fdsEnd: 27,
      cpuShare: 0.034,
    },
  ],
  workerRestarts: 0,
  traffic: {
    term: kind,
    stall: { ...kind, requests: 0, cut: 2, errors: 1, skipped: 3 },
  },
  churn: {
    registered: 5,
    reregistered: 2,
    removed: 1,
    removedAlreadyGone: 1,
    errors: 0,
    skipped: 0,
    registerP50Ms: 234.56,
    registerP99Ms: 488.1,
    errorSamples: [],
  },
  recycled: 3,
  end: { registered: 4, openConnections: 0 },
  gatewayErrors: 0,
  gatewayErrorSamples: [],
  series: [],
};

describe("the soak's summary", () => {
  it("gives each process's RSS, slope and descriptors, and the totals", () => {
    expect(soakLines(result)).toEqual([
      "30 min of mixed traffic (3 min warm-up), samples every 5 s; load average 1.50 → 2.25 on 2 CPUs",
      "primary 100          RSS 100.0 → 102.0 MiB, slope 75.3 KiB/min (second half -), 101.0 MiB settled; fds 27 before, 28 at start, 34 max, 27 at the end; CPU 3 %",
      "traffic: 50 requests over 20 connections, 1 errors; term 10/10, stall 10/10 (2 cut by the gateway, 1 errors, 3 skipped)",
      "registrations: 5 new, 2 again with a new key, 1 removed (1 recycled first), 3 recycled, 0 errors; RegisterCvm p50 234.6 ms, p99 488.1 ms",
      "after the load: 0 open connections, 4 instances; 0 worker restarts; 0 error lines in the gateway's log",
    ]);
  });
});

describe("the soak's JSON file", () => {
  it("keeps 4 significant digits of fractions and one line per sample", () => {
    const small: SoakResult = {
      ...result,
      series: [
        {
          role: "worker",
          pid: 9,
          points: [
            [5, 120_000, 25],
            [10, 120_004, 61],
          ],
        },
      ],
    };
    const text = resultJson(small);
    expect(text).toContain(
      '"points": [\n        [5, 120000, 25],\n        [10, 120004, 61]\n      ]',
    );
    const back = JSON.parse(text) as SoakResult;
    expect(back.processes[0]?.slopeKiBPerMin).toBe(75.25);
    expect(back.processes[0]?.cpuShare).toBe(0.034);
    expect(back.churn.registerP50Ms).toBe(234.6);
    expect(back.processes[0]?.lateSlopeKiBPerMin).toBeNull();
    expect(text.endsWith("}\n")).toBe(true);
  });
});

describe("the soak's plan", () => {
  it("warms up for a fifth of the run, at most 3 minutes, and samples less often in long runs", () => {
    expect(phases(30)).toEqual({ warmupMs: 180_000, sampleEveryMs: 5000, settleMs: 10_000 });
    expect(phases(1)).toEqual({ warmupMs: 12_000, sampleEveryMs: 2000, settleMs: 10_000 });
  });

  it("writes soak.json only for the default length", () => {
    expect(resultName(30, false)).toBe("soak.json");
    expect(resultName(2, false)).toBe("soak-2min.json");
    expect(resultName(1, true)).toBe("soak-quick.json");
  });
});
