import { pino } from "pino";
import type { RecentErrors } from "./recent.js";

export { type ErrorLine, RecentErrors } from "./recent.js";

export type Logger = pino.Logger;
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

/**
 * JSON lines on stderr. Config is logged only in its redacted form; secrets never reach a log.
 * With `recent`, lines at level error and above are also kept there (the admin dashboard).
 */
export function createLogger(
  level: LogLevel,
  destination: NodeJS.WritableStream = process.stderr,
  recent?: RecentErrors,
): Logger {
  const options = { level, base: null, timestamp: pino.stdTimeFunctions.isoTime };
  if (!recent) return pino(options, destination);
  return pino(
    options,
    pino.multistream([
      { level, stream: destination },
      { level: "error", stream: recent },
    ]),
  );
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
