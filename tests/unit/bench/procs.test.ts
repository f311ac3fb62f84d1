import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  groupAlive,
  groupCpuUs,
  groupRssBytes,
  ProcessSet,
  procCpuUs,
  procRssBytes,
  sleep,
} from "../../../bench/lib/procs.js";

/**
 * A process set: a spawned process plus a group it started outside its own (as our gateway's
 * HAProxy engine starts HAProxy with `setsid`) are counted and stopped as one.
 */
const dir = mkdtempSync(join(tmpdir(), "bench-procs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("ProcessSet.attach", () => {
  it("counts an attached group's CPU and RSS with the process, and stops both", async () => {
    const ps = new ProcessSet();
    const proc = ps.spawn("leader", "sleep", ["30"], { logDir: dir });
    // A group of its own that burns a little CPU, like HAProxy's master and worker.
    const other = spawn(
      "sh",
      ["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30"],
      {
        detached: true,
        stdio: "ignore",
      },
    );
    const pgid = other.pid as number;
    try {
      ps.attach(proc, pgid);
      expect([...proc.groups]).toEqual([proc.pid, pgid]);
      await sleep(300);
      expect(procRssBytes(proc)).toBe(groupRssBytes(proc.pid) + groupRssBytes(pgid));
      expect(groupRssBytes(pgid)).toBeGreaterThan(0);
      expect(procCpuUs(proc)).toBeGreaterThanOrEqual(groupCpuUs(pgid));
      await ps.stop(proc, 2000);
      expect(groupAlive(proc.pid)).toBe(false);
      expect(groupAlive(pgid)).toBe(false);
    } finally {
      ps.killAllNow();
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        // gone already
      }
    }
  });
});
