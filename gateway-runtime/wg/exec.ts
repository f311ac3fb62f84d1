/**
 * How the WireGuard manager runs `ip`, `wg` and `wireguard-go`: always an argument vector
 * (never a shell), always with a timeout, never with a secret on the command line. Tests and
 * the lab swap the runner, e.g. `prefixedRunner(["ip", "netns", "exec", ns])` runs everything
 * inside a network namespace.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { GatewayError } from "../errors.js";

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface CommandRunner {
  /** Runs to completion; rejects with `CommandError` on a non-zero exit, a signal or the timeout. */
  run(file: string, args: readonly string[], timeoutMs: number): Promise<CommandResult>;
  /** Starts a daemon in its own session (stdin ignored, our stdout and stderr); it may outlive us. */
  spawn(file: string, args: readonly string[]): ChildProcess;
}

/** A command that failed. `stderr` is the command's own; callers scrub it before showing it. */
export class CommandError extends GatewayError<"E_WG_COMMAND"> {
  readonly command: string;
  /** The exit status, or undefined when the command did not exit by itself (signal, timeout, ENOENT). */
  readonly exitCode: number | undefined;
  readonly timedOut: boolean;
  readonly stderr: string;

  constructor(command: string, exitCode: number | undefined, timedOut: boolean, stderr: string) {
    const how = timedOut
      ? "timed out"
      : exitCode === undefined
        ? "could not run"
        : `exited with ${exitCode}`;
    super("E_WG_COMMAND", `${command} ${how}`);
    this.command = command;
    this.exitCode = exitCode;
    this.timedOut = timedOut;
    this.stderr = stderr;
  }
}

/** Output beyond this is an error rather than memory growth (`wg show dump`: ~150 bytes a peer). */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** Runs commands on this host with `child_process.execFile`. */
export function execRunner(): CommandRunner {
  return {
    run(file, args, timeoutMs) {
      // Arguments never hold secrets (the contract above), so the whole command may be shown.
      const command = [file, ...args].join(" ");
      return new Promise((resolve, reject) => {
        execFile(
          file,
          [...args],
          {
            timeout: timeoutMs,
            killSignal: "SIGKILL",
            maxBuffer: MAX_OUTPUT_BYTES,
            encoding: "utf8",
          },
          (err, stdout, stderr) => {
            if (!err) {
              resolve({ stdout, stderr });
              return;
            }
            const status = typeof err.code === "number" ? err.code : undefined;
            const timedOut = err.killed === true && status === undefined;
            const text = stderr || (status === undefined ? err.message : "");
            reject(new CommandError(command, status, timedOut, text));
          },
        );
      });
    },
    spawn(file, args) {
      // A daemon that outlives us (wg/userspace.ts): its own session, our output streams.
      return spawn(file, [...args], { stdio: ["ignore", "inherit", "inherit"], detached: true });
    },
  };
}

/**
 * Runs every command behind `prefix`, which must exec the command in place (as
 * `ip netns exec <ns>` and `setpriv` do), so a spawned process's pid is the command's own.
 */
export function prefixedRunner(
  prefix: readonly [string, ...string[]],
  base: CommandRunner = execRunner(),
): CommandRunner {
  const [head, ...rest] = prefix;
  return {
    run: (file, args, timeoutMs) => base.run(head, [...rest, file, ...args], timeoutMs),
    spawn: (file, args) => base.spawn(head, [...rest, file, ...args]),
  };
}
