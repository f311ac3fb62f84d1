/**
 * HAProxy (Debian's /usr/sbin/haproxy) run by a test from a configuration of its own, in the
 * foreground (-db), stopped by its pid. Configurations in tests bind Unix sockets in a temporary
 * directory, never TCP ports: HAProxy binds with SO_REUSEPORT, so a port another HAProxy on
 * this machine holds would be shared with it, not refused.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { until } from "../../testkit/poll.js";

export const HAPROXY = "/usr/sbin/haproxy";

export interface RunningHaproxy {
  readonly child: ChildProcess;
  /** What HAProxy printed so far (warnings, errors). */
  output(): string;
  stop(): Promise<void>;
}

/** Writes `config` to `<dir>/haproxy.cfg`, starts HAProxy, waits for `<dir>/<ready>` to exist. */
export async function startHaproxy(
  dir: string,
  config: string,
  ready: string,
): Promise<RunningHaproxy> {
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, config);
  const child = spawn(HAPROXY, ["-db", "-f", file], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(killer);
  };
  try {
    await until(
      `HAProxy's ${ready}`,
      () => {
        if (child.exitCode !== null) throw new Error(`HAProxy exited: ${output}`);
        return existsSync(join(dir, ready));
      },
      10_000,
      { context: () => output },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { child, output: () => output, stop };
}
