/**
 * When a worker's primary goes (a hand-over's SIGTERM, or the main process killed), the worker
 * keeps accepting until the next generation serves, then drains. Stopping at once would leave
 * the shared sockets with no one accepting for the whole start-up of the next generation (its
 * primary and its workers load the bundle in turn): connections wait in the kernel's queue,
 * and after a crash also for systemd's RestartSec. The next generation's `gateway run` writes
 * its pid to the ready file once every part serves (its directory loaded, health polled), which
 * is the cue. Without a ready file there is no cue, and the worker drains at once.
 */
import { readFile } from "node:fs/promises";

/**
 * How long a worker waits for the next generation before it drains anyway: a start-up takes
 * seconds, and one that takes longer has failed (a broken bundle, systemd's start limit), or
 * the gateway was stopped rather than restarted.
 */
export const NEXT_GENERATION_WAIT_MS = 30_000;

export type NextGeneration = "ready" | "timeout" | "aborted";

/**
 * Resolves "ready" once `readyFile` names a pid other than `previousPid` (the primary that
 * started this worker), "timeout" after `timeoutMs`, "aborted" when `signal` fires.
 */
export async function nextGeneration(opts: {
  readonly readyFile: string;
  readonly previousPid: number;
  readonly timeoutMs?: number;
  readonly everyMs?: number;
  readonly signal?: AbortSignal;
}): Promise<NextGeneration> {
  const { readyFile, previousPid, everyMs = 50 } = opts;
  const deadline = Date.now() + (opts.timeoutMs ?? NEXT_GENERATION_WAIT_MS);
  while (Date.now() < deadline) {
    if (opts.signal?.aborted) return "aborted";
    const pid = Number.parseInt(await readFile(readyFile, "utf8").catch(() => ""), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== previousPid) return "ready";
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return "timeout";
}
