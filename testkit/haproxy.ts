/**
 * The HAProxy a gateway on the `haproxy` engine runs, seen from tests and the bench: it runs in
 * its own process group and outlives a runtime whose sockets were handed over (the next
 * generation adopts it), so whoever started that runtime stops it too.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FILES } from "../gateway-runtime/engine/haproxy/layout.js";
import { until } from "./poll.js";

/** Whether `pid` runs; a zombie (exited, not yet reaped) does not. */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /s.test(stat);
  } catch {
    return false;
  }
}

/** The HAProxy master's pid from the engine's pid file; undefined while there is none. */
export function haproxyMaster(engineDir: string): number | undefined {
  const file = join(engineDir, FILES.pid);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 && running(pid) ? pid : undefined;
}

/** Stops the HAProxy left in `engineDir`, if any: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopHaproxy(engineDir: string, graceMs = 3_000): Promise<void> {
  const master = haproxyMaster(engineDir);
  if (master === undefined) return;
  process.kill(master, "SIGTERM");
  await until("HAProxy to stop", () => !running(master), graceMs).catch(() => {
    if (running(master)) process.kill(master, "SIGKILL");
  });
}
