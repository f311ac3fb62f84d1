import { describe, expect, it } from "vitest";
import { NODE_FLAGS } from "../../../host/layout.js";
import { ALL_SCENARIOS, BenchUsageError, parseBenchOptions } from "../../../bench/lib/options.js";

describe("npm run bench's options", () => {
  it("a run without options is the complete default run, with the unit's node flags", () => {
    const o = parseBenchOptions([]);
    expect(o).toMatchObject({
      quick: false,
      instances: 1,
      workers: 1,
      attemptDelay: undefined,
      base: undefined,
      baseNode: undefined,
      idleGroups: undefined,
      unitFlags: true,
      complete: true,
    });
    expect(o.oursFlags).toEqual(NODE_FLAGS);
    expect([...o.only]).toEqual(ALL_SCENARIOS);
    expect([...o.targetNames]).toEqual([
      "direct",
      "haproxy",
      "nginx",
      "ours",
      "ours-haproxy",
      "node",
    ]);
    expect(o.timing).toEqual({ runs: 3, seconds: 10, warmupSeconds: 3 });
    expect(o.soakMinutes).toBe(30);
  });

  it("the soak runs 1 minute with --quick, or --soak-minutes", () => {
    expect(parseBenchOptions(["--quick"]).soakMinutes).toBe(1);
    expect(parseBenchOptions(["--only", "s", "--soak-minutes", "2"]).soakMinutes).toBe(2);
    expect(() => parseBenchOptions(["--soak-minutes", "0"])).toThrow(
      "--soak-minutes must be a positive number",
    );
  });

  it.each([
    [["--quick"]],
    [["--only", "a,b"]],
    [["--targets", "haproxy,ours"]],
    [["--ours-flags="]],
    [["--base", "HEAD"]],
    [["--instances", "3"]],
    [["--attempt-delay", "250ms"]],
    [["--workers", "2"]],
    [["--base-node", "/usr/bin/node"]],
    [["--idle-groups", "X25519MLKEM768:X25519"]],
    [["--soak-minutes", "5"]],
  ])("%j is not a complete run (writes quick.* or partial.*)", (argv) => {
    expect(parseBenchOptions(argv).complete).toBe(false);
  });

  it("--base adds the base target; --attempt-delay is kept as given for ours", () => {
    const o = parseBenchOptions([
      "--base",
      "HEAD~1",
      "--attempt-delay",
      "250ms",
      "--targets",
      "ours",
    ]);
    expect([...o.targetNames]).toEqual(["ours", "base"]);
    expect(o.base).toBe("HEAD~1");
    expect(o.attemptDelay).toBe("250ms");
  });

  it("--base-node adds the base target: ours' code on another node binary", () => {
    const o = parseBenchOptions(["--base-node", "/usr/bin/node", "--targets", "haproxy,ours"]);
    expect([...o.targetNames]).toEqual(["haproxy", "ours", "base"]);
    expect(o.base).toBeUndefined();
    expect(o.baseNode).toBe("/usr/bin/node");
  });

  it("reports every bad option at once", () => {
    const attempt = () =>
      parseBenchOptions([
        "--only",
        "a,zz",
        "--targets",
        "ours,caddy",
        "--attempt-delay",
        "2x",
        "--runs",
        "0",
        "--base=",
        "--workers",
        "two",
      ]);
    expect(attempt).toThrow(BenchUsageError);
    expect(attempt).toThrow(
      'unknown scenario "zz"; unknown target "caddy"; --base needs a commit; --attempt-delay "2x" is not a duration like "250ms"; --runs must be a positive number; --workers must be a positive number',
    );
  });
});
