import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FileLock } from "../../../gateway-runtime/certs/lock.js";

const dir = mkdtempSync(join(tmpdir(), "gw-lock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const lockPath = () => join(dir, `renew-${n++}.lock`);

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
    encoding: "utf8",
  });
  return Number(r.stdout);
}

describe("FileLock", () => {
  it("gives the lock to one holder until it is released", async () => {
    const path = lockPath();
    const a = new FileLock(path, { staleMs: 60_000 });
    const b = new FileLock(path, { staleMs: 60_000 });
    const held = await a.tryAcquire();
    expect(held).not.toBeUndefined();
    expect(await b.tryAcquire()).toBeUndefined();
    const content = JSON.parse(readFileSync(path, "utf8"));
    expect(content).toMatchObject({ pid: process.pid, host: hostname() });
    await held?.release();
    const next = await b.tryAcquire();
    expect(next).not.toBeUndefined();
    await next?.release();
    expect(readdirSync(dir).filter((f) => f.startsWith("renew-0"))).toEqual([]);
  });

  it("lets exactly one of many concurrent callers win", async () => {
    const path = lockPath();
    const locks = Array.from({ length: 20 }, () => new FileLock(path, { staleMs: 60_000 }));
    const results = await Promise.all(locks.map((l) => l.tryAcquire()));
    expect(results.filter((r) => r !== undefined)).toHaveLength(1);
  });

  it("breaks a lock whose process is gone (same host)", async () => {
    const path = lockPath();
    writeFileSync(
      path,
      JSON.stringify({ pid: deadPid(), host: hostname(), token: "t", at: Date.now() }),
    );
    const held = await new FileLock(path, { staleMs: 60_000 }).tryAcquire();
    expect(held).not.toBeUndefined();
    expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(process.pid);
    await held?.release();
  });

  it("keeps a lock of a live process, and of another host, until it is older than staleMs", async () => {
    const path = lockPath();
    const at = Date.now();
    writeFileSync(path, JSON.stringify({ pid: 1, host: "other-host", token: "t", at }));
    const lock = (now: number) =>
      new FileLock(path, { staleMs: 60_000, now: () => now, isAlive: () => false });
    expect(await lock(at + 59_000).tryAcquire()).toBeUndefined();
    const held = await lock(at + 61_000).tryAcquire();
    expect(held).not.toBeUndefined();
    await held?.release();
    writeFileSync(path, JSON.stringify({ pid: process.pid, host: hostname(), token: "t", at }));
    expect(await new FileLock(path, { staleMs: 60_000 }).tryAcquire()).toBeUndefined();
  });

  it("breaks a torn (empty) lock file only after a grace period", async () => {
    const path = lockPath();
    writeFileSync(path, "");
    expect(await new FileLock(path, { staleMs: 60_000 }).tryAcquire()).toBeUndefined();
    const old = (Date.now() - 10_000) / 1000;
    utimesSync(path, old, old);
    const held = await new FileLock(path, { staleMs: 60_000 }).tryAcquire();
    expect(held).not.toBeUndefined();
    await held?.release();
  });

  it("release never removes a lock someone else holds now", async () => {
    const path = lockPath();
    const held = await new FileLock(path, { staleMs: 60_000 }).tryAcquire();
    // Our lock was broken as stale and taken by another node meanwhile.
    writeFileSync(
      path,
      JSON.stringify({ pid: 1, host: "other-host", token: "theirs", at: Date.now() }),
    );
    await held?.release();
    expect(JSON.parse(readFileSync(path, "utf8")).token).toBe("theirs");
  });

  it("never lets two breakers of one stale lock both win", async () => {
    for (let round = 0; round < 10; round++) {
      const path = lockPath();
      writeFileSync(
        path,
        JSON.stringify({ pid: deadPid(), host: hostname(), token: "t", at: Date.now() }),
      );
      const results = await Promise.all(
        Array.from({ length: 8 }, () => new FileLock(path, { staleMs: 60_000 }).tryAcquire()),
      );
      expect(results.filter((r) => r !== undefined).length).toBeLessThanOrEqual(1);
    }
  });
});
