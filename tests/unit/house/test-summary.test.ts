/**
 * The last lines of `npm test` (scripts/test-summary.mjs): the adversarial suite's summary, added
 * up from what its parts recorded (tests/adversarial/tally.ts), then "N passed, N failed".
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const SCRIPT = new URL("../../../scripts/test-summary.mjs", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "gw-summary-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const report = join(dir, "vitest.json");
writeFileSync(
  report,
  JSON.stringify({
    numPassedTests: 10,
    numFailedTests: 0,
    numPendingTests: 0,
    numTodoTests: 0,
    numTotalTests: 10,
    testResults: [],
  }),
);
const summary = (tally: string) =>
  spawnSync(process.execPath, [SCRIPT, report, "2", "0", "0", tally], { encoding: "utf8" });

describe("test-summary.mjs", () => {
  it("adds up the adversarial parts, crashes and leaks included, before the final line", () => {
    const tally = join(dir, "adversarial.jsonl");
    writeFileSync(
      tally,
      [
        { part: "ClientHello mutations", cases: 4210, crashed: false, leaked: false },
        { part: "idle flood", cases: 5000, crashed: false, leaked: true },
        { part: "RPC, etcd store", cases: 1371, crashed: true, leaked: false },
      ]
        .map((p) => JSON.stringify(p))
        .join("\n"),
    );
    const r = summary(tally);
    expect(r.stdout.trim().split("\n")).toEqual([
      "adversarial suite: 10,581 hostile cases in 3 parts, 1 crashes, 1 leaks",
      "12 passed, 0 failed",
    ]);
    expect(r.status).toBe(0);
  });

  it("prints no adversarial line when the suite did not run", () => {
    const r = summary(join(dir, "absent.jsonl"));
    expect(r.stdout.trim()).toBe("12 passed, 0 failed");
  });
});
