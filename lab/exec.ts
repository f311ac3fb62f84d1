import { execFile, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";

/** A lab step failed; the message names the step and what went wrong. */
export class LabError extends Error {
  override name = "LabError";
}

export function step(message: string): void {
  process.stdout.write(`lab: ${message}\n`);
}

/** Runs a command to completion (bounded), returning stdout; throws with its stderr. */
export function sh(
  file: string,
  args: readonly string[],
  opts: { input?: string; timeoutMs?: number; ns?: string } = {},
): Promise<string> {
  const [cmd, argv] = opts.ns
    ? ["ip", ["netns", "exec", opts.ns, file, ...args]]
    : [file, [...args]];
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      argv,
      { timeout: opts.timeoutMs ?? 60_000, killSignal: "SIGKILL", maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error)
          reject(
            new LabError(`${[file, ...args].join(" ")} failed: ${stderr.trim() || error.message}`),
          );
        else resolve(stdout);
      },
    );
    // A command that exits without reading its input must not crash the lab with EPIPE.
    child.stdin?.on("error", () => {});
    child.stdin?.end(opts.input ?? "");
  });
}

/** Like `sh`, but true/false instead of throwing. */
export async function ok(
  file: string,
  args: readonly string[],
  opts: { ns?: string } = {},
): Promise<boolean> {
  return sh(file, args, { ...opts, timeoutMs: 10_000 }).then(
    () => true,
    () => false,
  );
}

/**
 * Starts a long-running daemon detached from this process (it outlives `npm run lab`), in a
 * namespace when given, with output appended to `logFile`. Returns its pid.
 */
export function daemon(
  file: string,
  args: readonly string[],
  opts: { ns?: string; logFile: string; env?: NodeJS.ProcessEnv },
): number {
  const [cmd, argv] = opts.ns
    ? ["ip", ["netns", "exec", opts.ns, file, ...args]]
    : [file, [...args]];
  const out = openSync(opts.logFile, "a", 0o600);
  const child = spawn(cmd, argv, {
    detached: true,
    stdio: ["ignore", out, out],
    env: { ...process.env, ...opts.env },
  });
  closeSync(out);
  child.unref();
  if (child.pid === undefined) throw new LabError(`could not start ${file}`);
  return child.pid;
}

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` until it holds or `timeoutMs` passes; throws `what` on timeout. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new LabError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM then SIGKILL for a daemon's whole process group. */
export async function stopDaemon(pid: number | undefined): Promise<void> {
  if (!alive(pid)) return;
  const group = -(pid as number);
  try {
    process.kill(group, "SIGTERM");
  } catch {
    process.kill(pid as number, "SIGTERM");
  }
  const deadline = Date.now() + 5_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) {
    try {
      process.kill(group, "SIGKILL");
    } catch {
      process.kill(pid as number, "SIGKILL");
    }
  }
}
