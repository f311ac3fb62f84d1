import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { SerialCoalescer } from "../../../gateway-runtime/wg/coalesce.js";

/** An apply that records its values and runs until `release()` is called. */
function gatedApply() {
  const applied: number[] = [];
  let running = 0;
  let maxRunning = 0;
  const gates: (() => void)[] = [];
  const apply = async (value: number) => {
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    applied.push(value);
    await new Promise<void>((resolve) => gates.push(resolve));
    running -= 1;
  };
  const release = async () => {
    for (let i = 0; i < 100 && gates.length === 0; i++) await sleep(5);
    gates.shift()?.();
  };
  return { apply, applied, release, running: () => running, maxRunning: () => maxRunning };
}

describe("SerialCoalescer", () => {
  it("applies the latest value once per window and settles callers after their apply", async () => {
    const g = gatedApply();
    const c = new SerialCoalescer(10, g.apply);
    const settled: string[] = [];
    const first = [1, 2, 3].map((v) => c.submit(v).then(() => settled.push(`first ${v}`)));
    await g.release(); // the first apply (value 3) is now running...
    // ...so these join the next batch, even though its window has long passed when it starts.
    const second = [4, 5].map((v) => c.submit(v).then(() => settled.push(`second ${v}`)));
    await Promise.all(first);
    expect(settled).toEqual(["first 1", "first 2", "first 3"]);
    await g.release();
    await Promise.all(second);
    expect(g.applied).toEqual([3, 5]);
    expect(g.maxRunning()).toBe(1);
  });

  it("runs tasks between applies, never beside one", async () => {
    const g = gatedApply();
    const c = new SerialCoalescer(1, g.apply);
    const applied = c.submit(1);
    await sleep(5);
    let seen: { running: number; applied: number[] } | undefined;
    const task = c.run(async () => {
      seen = { running: g.running(), applied: [...g.applied] };
    });
    expect(seen).toBeUndefined();
    await g.release();
    await Promise.all([applied, task]);
    expect(seen).toEqual({ running: 0, applied: [1] });
  });

  it("on close, waits for the running apply and fails every call not applied", async () => {
    const g = gatedApply();
    const c = new SerialCoalescer(1, g.apply);
    const running = c.submit(1);
    await sleep(5);
    const queued = c.submit(2); // its window ends while apply 1 runs
    await sleep(5);
    let closedYet = false;
    const closed = c
      .close(() => new Error("closed"))
      .then(() => {
        closedYet = true;
      });
    await sleep(5);
    expect(closedYet).toBe(false);
    await g.release();
    await expect(running).resolves.toBeUndefined();
    await closed;
    await expect(queued).rejects.toThrow("closed");
    await expect(c.submit(3)).rejects.toThrow("closed");
    expect(g.applied).toEqual([1]);
  });

  it("on close, drops a batch whose window is still open", async () => {
    const g = gatedApply();
    const c = new SerialCoalescer(60_000, g.apply);
    const waiting = c.submit(1);
    await c.close(() => new Error("closed"));
    await expect(waiting).rejects.toThrow("closed");
    expect(g.applied).toEqual([]);
  });
});
