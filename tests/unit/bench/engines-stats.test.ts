import { describe, expect, it } from "vitest";
import {
  type EnginesResult,
  engineLines,
  engineRows,
} from "../../../bench/registration/engines-stats.js";
import { sideBySide } from "../../../bench/lib/side-by-side.js";

const result: EnginesResult = {
  date: "2026-12-07T10:00:00.000Z",
  handshakePollInterval: "250ms",
  boundMs: 15_000,
  loadAverageStart: 1.5,
  engines: [
    {
      target: "ours",
      engine: "node",
      appRoutableMs: [40, 60, 50, 70],
      instanceRoutableMs: [20, 30, 25, 35],
      registrations: 20,
      runtimeCpuMs: 300,
      haproxyCpuMs: null,
      idleCpuMs: 100,
      windowMs: 7000,
    },
    {
      target: "ours-haproxy",
      engine: "haproxy",
      appRoutableMs: [300, null, 200, null],
      instanceRoutableMs: [20, 30, 25, 35],
      registrations: 20,
      runtimeCpuMs: 400,
      haproxyCpuMs: 10,
      idleCpuMs: 100,
      windowMs: 7000,
    },
  ],
};

describe("scenario (i), the control plane per engine", () => {
  it("gives a row per engine: CPU per registration, time until routable, misses as errors", () => {
    const [node, haproxy] = engineRows(result);
    expect(node).toMatchObject({
      scenario: "i",
      target: "ours",
      cpuUsPerOp: 15_000,
      p50Us: 60_000,
      p99Us: 70_000,
      haproxyCpuUsPerRegistration: null,
      instanceRoutableP50Us: 30_000,
      errors: 0,
    });
    // Two of four missed the bound: they count above every other, so the p50 is a miss.
    expect(haproxy).toMatchObject({
      cpuUsPerOp: 20_000,
      p50Us: null,
      p99Us: null,
      haproxyCpuUsPerRegistration: 500,
      errors: 2,
    });
  });

  it("says how many were not routable within the bound, and the poll interval", () => {
    const lines = engineLines(result);
    expect(lines[1]).toContain("2 not within 15 s");
    expect(lines[1]).toContain("HAProxy 0.5 ms");
    expect(lines.at(-1)).toContain("health poll every 250ms");
  });

  it("is in the side-by-side table, also when no load scenario ran", () => {
    const lines = sideBySide(engineRows(result));
    expect(lines).toContain("| (i) | runtime CPU per registration | 15.0 ms | 20.0 ms |");
    expect(lines).toContain("| (i) | not routable within the bound | 0 | 2 |");
  });
});
