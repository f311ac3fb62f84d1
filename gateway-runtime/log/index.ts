import { pino } from "pino";

export type Logger = pino.Logger;
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

/** JSON lines on stderr. Config is logged only in its redacted form; secrets never reach a log. */
export function createLogger(
  level: LogLevel,
  destination: NodeJS.WritableStream = process.stderr,
): Logger {
  return pino({ level, base: null, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
