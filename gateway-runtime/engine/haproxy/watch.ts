/**
 * After a hand-over the runtime's generation exits and leaves HAProxy to the next one, which
 * adopts it (haproxy engine) or retires it (node engine). When no next generation comes (the
 * gateway was stopped, not restarted: the unit's KillMode=process leaves HAProxy running) it
 * would go on holding the public ports for good. So the leaving generation starts this watcher
 * (`gateway haproxy-watch`, detached): it waits for the next generation as the proxy workers
 * do (workers/next-generation.ts), and soft-stops HAProxy when none is ready in time.
 */
import { spawn } from "node:child_process";
import type { Logger } from "../../log/index.js";
import { nextGeneration } from "../../workers/next-generation.js";
import { retireHaproxy } from "./process.js";

export interface WatchOptions {
  readonly dir: string;
  readonly readyFile: string;
  /** The generation that left: a ready file naming another pid is the next one. */
  readonly previousPid: number;
  readonly timeoutMs?: number;
}

/** Resolves "ready" when a next generation serves, "retired" when HAProxy was soft-stopped. */
export async function watchHandOver(
  opts: WatchOptions,
  log: Logger,
): Promise<"ready" | "retired" | "gone"> {
  const next = await nextGeneration({
    readyFile: opts.readyFile,
    previousPid: opts.previousPid,
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
  });
  if (next === "ready") return "ready";
  log.warn("no next gateway generation in time: the gateway was stopped, so HAProxy stops too");
  return (await retireHaproxy(opts.dir, log)) === undefined ? "gone" : "retired";
}

/** Starts `gateway haproxy-watch` detached, from the bundle this process runs. */
export function spawnHandOverWatch(opts: Omit<WatchOptions, "timeoutMs">): void {
  const bundle = process.argv[1];
  if (bundle === undefined) return;
  const args = ["--dir", opts.dir, "--ready-file", opts.readyFile];
  spawn(
    process.execPath,
    [bundle, "haproxy-watch", ...args, "--previous-pid", String(opts.previousPid)],
    { detached: true, stdio: "ignore" },
  ).unref();
}
