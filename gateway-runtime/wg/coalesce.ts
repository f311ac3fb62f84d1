/**
 * One-at-a-time changes with coalescing: `submit(value)` calls within `windowMs` of the first
 * one share one `apply`, the latest value winning (values are whole desired states). Each
 * promise settles with the first apply that starts after its call; calls arriving while an
 * earlier apply runs join the next one.
 */

interface Batch<T> {
  value: T;
  readonly waiters: { resolve: () => void; reject: (err: unknown) => void }[];
  timer: NodeJS.Timeout | undefined;
}

export class SerialCoalescer<T> {
  readonly #windowMs: number;
  readonly #apply: (value: T) => Promise<void>;
  #batch: Batch<T> | undefined;
  #chain: Promise<void> = Promise.resolve();
  #closed: (() => Error) | undefined;

  constructor(windowMs: number, apply: (value: T) => Promise<void>) {
    this.#windowMs = windowMs;
    this.#apply = apply;
  }

  submit(value: T): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed());
    let batch = this.#batch;
    if (!batch) {
      const created: Batch<T> = { value, waiters: [], timer: undefined };
      created.timer = setTimeout(() => this.#flush(created), this.#windowMs);
      this.#batch = batch = created;
    }
    batch.value = value;
    const waiters = batch.waiters;
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  }

  /** Runs `task` after every earlier task and apply, never beside one. */
  run(task: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(() => {
      if (this.#closed) throw this.#closed();
      return task();
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Fails calls not yet applied with `error()`, refuses new ones, and resolves once the
   * running apply or task (if any) has finished.
   */
  async close(error: () => Error): Promise<void> {
    this.#closed ??= error;
    const batch = this.#batch;
    if (batch?.timer !== undefined) {
      clearTimeout(batch.timer);
      this.#batch = undefined;
      for (const w of batch.waiters) w.reject(error());
    }
    await this.#chain;
  }

  #flush(batch: Batch<T>): void {
    batch.timer = undefined;
    this.run(() => {
      // Until here, new calls still joined this batch.
      if (this.#batch === batch) this.#batch = undefined;
      return this.#apply(batch.value);
    }).then(
      () => {
        for (const w of batch.waiters) w.resolve();
      },
      (err: unknown) => {
        for (const w of batch.waiters) w.reject(err);
      },
    );
  }
}
