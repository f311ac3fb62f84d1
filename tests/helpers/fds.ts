import { readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/** File descriptors process `pid` (this process by default) has open right now (Linux `/proc`). */
export function openFdCount(pid: number | "self" = "self"): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Polls until at most `target + slack` descriptors are open or `timeoutMs` has passed, and
 * returns the last count, so a test asserts on it (closing a socket frees its fd a loop turn
 * after `destroy()`). `pid` counts another process's (a gateway the test started).
 */
export async function waitForFds(
  target: number,
  slack: number,
  timeoutMs: number,
  pid: number | "self" = "self",
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const count = openFdCount(pid);
    if (count <= target + slack || performance.now() >= deadline) return count;
    await sleep(20);
  }
}
