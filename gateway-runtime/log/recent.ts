/**
 * The latest error log lines, kept in memory for the admin dashboard: an operator looking at a
 * node sees what went wrong lately without a shell on the host. A pino destination (index.ts
 * sends it the lines at level error and above); a bounded ring, each line cut to a bounded
 * length, so a flood of errors costs a fixed amount of memory.
 */

export interface ErrorLine {
  /** ISO time of the log line. */
  readonly time: string;
  readonly msg: string;
  /** The error's message and code, when the line carries one. */
  readonly err?: string;
  /** The part of the gateway that logged it (`admin`, `registration`, ...), when known. */
  readonly part?: string;
}

const MAX_TEXT = 500;
const cut = (text: string): string =>
  text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;

function errorText(err: unknown): string | undefined {
  if (err === undefined || err === null) return undefined;
  if (typeof err !== "object") return cut(String(err));
  const { message, code } = err as { message?: unknown; code?: unknown };
  const text = typeof message === "string" ? message : JSON.stringify(err);
  return cut(typeof code === "string" ? `${code}: ${text}` : text);
}

export class RecentErrors {
  readonly #lines: ErrorLine[] = [];
  readonly #capacity: number;

  constructor(capacity = 50) {
    this.#capacity = capacity;
  }

  /** pino's destination interface: one serialized JSON line. */
  write(line: string): void {
    let parsed: { time?: unknown; msg?: unknown; err?: unknown; part?: unknown };
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = { msg: line };
    }
    const err = errorText(parsed.err);
    this.#lines.push({
      time: typeof parsed.time === "string" ? parsed.time : new Date().toISOString(),
      msg: cut(typeof parsed.msg === "string" ? parsed.msg : ""),
      ...(err ? { err } : {}),
      ...(typeof parsed.part === "string" ? { part: parsed.part } : {}),
    });
    if (this.#lines.length > this.#capacity) this.#lines.shift();
  }

  /** Newest first. */
  list(): ErrorLine[] {
    return [...this.#lines].reverse();
  }
}
