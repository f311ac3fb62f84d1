/**
 * Group commit, shared by the registration stores: operations queued until the next macrotask,
 * or while a commit is in flight, are applied to one draft of the state and committed together
 * (one file write, one etcd transaction), then each caller learns its own outcome.
 */
import type { RegistryState } from "./state.js";
import type { InstanceRecord, PortPolicy, RegisterRequest } from "./store.js";

export interface Operation {
  run(state: RegistryState, now: number): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Runs every operation against `draft` in order; a throwing one leaves the others alone. */
export function applyBatch(batch: readonly Operation[], draft: RegistryState, now: number) {
  return batch.map((op): Outcome => {
    try {
      return { ok: true, value: op.run(draft, now) };
    } catch (error) {
      return { ok: false, error };
    }
  });
}

export function settle(batch: readonly Operation[], outcomes: readonly Outcome[]): void {
  batch.forEach((op, k) => {
    const outcome = outcomes[k];
    if (outcome?.ok) op.resolve(outcome.value);
    else op.reject(outcome?.error);
  });
}

export class GroupCommit {
  readonly #commit: (batch: Operation[]) => Promise<void>;
  readonly #closedError: () => Error;
  readonly #maxBatch: number;
  /** Operations waiting for the next commit. */
  #queue: Operation[] = [];
  /** Set while a drain is scheduled or running. */
  #draining: Promise<void> | undefined;
  #closed = false;

  /** `commit` settles every operation of its batch; `maxBatch` bounds one batch's size. */
  constructor(
    commit: (batch: Operation[]) => Promise<void>,
    closedError: () => Error,
    maxBatch = Number.POSITIVE_INFINITY,
  ) {
    this.#commit = commit;
    this.#closedError = closedError;
    this.#maxBatch = maxBatch;
  }

  enqueue<T>(run: (state: RegistryState, now: number) => T): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closedError());
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      this.#draining ??= new Promise<void>((done) => {
        setImmediate(() => void this.#drain().then(done));
      });
    });
  }

  /** A registration, queued (copied: the caller's object may change; the state freezes the policy). */
  register(req: RegisterRequest): Promise<InstanceRecord> {
    const { instanceId, appId, publicKey } = req;
    const portPolicy = req.portPolicy && structuredClone(req.portPolicy);
    return this.enqueue((state, now) =>
      state.register({ instanceId, appId, publicKey, portPolicy }, now),
    );
  }

  remove(instanceId: string): Promise<boolean> {
    return this.enqueue((state) => state.remove(instanceId));
  }

  setPortPolicyOverride(instanceId: string, policy: PortPolicy | undefined) {
    const copy = policy && structuredClone(policy);
    return this.enqueue((state, now) => state.setPortPolicyOverride(instanceId, copy, now));
  }

  setOutOfRotation(instanceId: string, out: boolean): Promise<InstanceRecord> {
    return this.enqueue((state, now) => state.setOutOfRotation(instanceId, out, now));
  }

  /** Refuses new operations and waits until those already accepted are committed. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#draining) await this.#draining;
  }

  async #drain(): Promise<void> {
    for (;;) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      if (batch.length === 0) {
        // Same synchronous step as the emptiness check: a later enqueue schedules a new drain.
        this.#draining = undefined;
        return;
      }
      try {
        await this.#commit(batch);
      } catch (error) {
        // Only a bug gets here; never leave a caller waiting.
        for (const op of batch) op.reject(error);
      }
    }
  }
}
