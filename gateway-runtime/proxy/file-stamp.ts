/**
 * Change detection for files that are replaced by rename (certificate renewals). The caller
 * takes a stamp *before* it reads the files and compares later stamps with it, so a change
 * made between the read and the first poll is still seen (Node's `watchFile` takes its
 * baseline on its own first poll, which may come after such a change and then never fire).
 */
import { stat } from "node:fs/promises";

/** Identity and state of each file: device, inode, size, mtime and ctime, or the stat error. */
export async function stampOf(files: readonly string[]): Promise<string> {
  const parts = await Promise.all(
    files.map((file) =>
      stat(file, { bigint: true }).then(
        (s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`,
        (e: NodeJS.ErrnoException) => `error:${e.code ?? e.message}`,
      ),
    ),
  );
  return parts.join("|");
}

/**
 * Polls `files` every `intervalMs`; when their stamp differs from the last one seen (the
 * baseline given, or one passed to `seen()`), calls `onChange` once per difference. At most
 * one poll is in flight; the timer does not keep the process alive.
 */
export class StampPoller {
  #last: string;
  #polling = false;
  readonly #timer: NodeJS.Timeout;
  #seenCount = 0;

  constructor(
    private readonly files: readonly string[],
    baseline: string,
    intervalMs: number,
    private readonly onChange: () => void,
  ) {
    this.#last = baseline;
    this.#timer = setInterval(() => void this.#poll(), intervalMs).unref();
  }

  /** Records a stamp the owner has acted on (taken before its own read of the files). */
  seen(stamp: string): void {
    this.#last = stamp;
    this.#seenCount += 1;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const seenBefore = this.#seenCount;
      const stamp = await stampOf(this.files);
      // A seen() during the stat wins (this stamp may be older than the owner's read); a
      // change that seen() missed differs from it and is reported by the next poll.
      if (seenBefore === this.#seenCount && stamp !== this.#last) {
        this.#last = stamp;
        this.onChange();
      }
    } finally {
      this.#polling = false;
    }
  }
}
