import { setTimeout as sleep } from "node:timers/promises";

export interface PollOptions {
  /** Text appended to the timeout error (a process's log, say). */
  readonly context?: () => string;
  /** @default 50 */
  readonly everyMs?: number;
}

/**
 * Polls `check` until it returns a value other than `undefined` or `false`, and returns that.
 * A check that throws counts as "not yet"; its last error is in the timeout message, which also
 * names `what`. Every wait of the tests for something that happens in the background goes
 * through here, so none of them hangs and each failure says what it waited for.
 */
export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  options: PollOptions = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const value = await Promise.resolve()
      .then(check)
      .catch((error: unknown) => {
        lastError = error;
        return undefined;
      });
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) {
      const last = lastError === undefined ? "" : `\nlast error: ${String(lastError)}`;
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last}\n${options.context?.() ?? ""}`,
      );
    }
    await sleep(options.everyMs ?? 50);
  }
}
