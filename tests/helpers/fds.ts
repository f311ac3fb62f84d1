import { readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/** File descriptors this process has open right now (Linux `/proc`). */
export function openFdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/**
 * Polls until at most `target + slack` descriptors are open or `timeoutMs` has passed, and
 * returns the last count, so a test asserts on it (closing a socket frees its fd a loop turn
 * after `destroy()`).
 */
export async function waitForFds(
  target: number,
  slack: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const count = openFdCount();
    if (count <= target + slack || performance.now() >= deadline) return count;
    await sleep(20);
  }
}
