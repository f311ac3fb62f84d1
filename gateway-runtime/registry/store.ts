/**
 * Registration state behind one interface, two stores chosen by config: `FileRegistrationStore`
 * is the single-host one: one JSON file (`core.state_path`), replaced atomically, with
 * concurrent changes group-committed into one write; `EtcdRegistrationStore` (etcd-store.ts)
 * shares the state among the hosts of a region (`core.cluster`).
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { GatewayError } from "../errors.js";
import type { IpPlan } from "./allocate.js";
import { ensureDir, removeStrayTemps, writeFileAtomic } from "../files/atomic.js";
import { applyBatch, GroupCommit, type Operation, settle } from "./group-commit.js";
import { RegistryState } from "./state.js";

/** dstack's `PortAttrs`: whether the gateway sends a PROXY protocol header to `port`. */
export interface PortAttrs {
  readonly port: number;
  readonly pp: boolean;
}

/**
 * dstack's `PortPolicy`, as a CVM reports it at registration: per-port attributes, and whether
 * unlisted ports are closed. Absent on a record: the CVM reported none (not the same as an empty
 * policy, which opens every port and asks for no header).
 */
export interface PortPolicy {
  readonly ports: readonly PortAttrs[];
  readonly restrict_mode: boolean;
}

export interface InstanceRecord {
  readonly instanceId: string;
  readonly appId: string;
  /** WireGuard public key, base64. */
  readonly publicKey: string;
  /** Dotted IPv4 address inside `core.wg.client_ip_range`. */
  readonly ip: string;
  /** ms since the epoch. */
  readonly registeredAt: number;
  readonly updatedAt: number;
  /** The port policy of the latest registration; absent when the CVM reported none. */
  readonly portPolicy?: PortPolicy | undefined;
  /** An operator's override of it (the admin API); kept across re-registrations. */
  readonly portPolicyOverride?: PortPolicy | undefined;
  /**
   * An operator took the instance out of its app's rotation (admin `SetInstanceReady`): the
   * proxy picks it for no app-wide connection, but it stays registered and reachable by its id.
   */
  readonly outOfRotation?: true | undefined;
}

export interface RegisterRequest {
  readonly instanceId: string;
  readonly appId: string;
  readonly publicKey: string;
  /** Replaces the stored policy; absent clears it (the CVM no longer reports one). */
  readonly portPolicy?: PortPolicy | undefined;
}

export interface RegistrationStore {
  /**
   * Registers or re-registers; the same instanceId keeps its IP (its public key may change).
   * Errors: a public key held by another instance is `E_REGISTRY_KEY_IN_USE`; a full range is
   * `E_REGISTRY_FULL`; an instance re-registering under another app is
   * `E_REGISTRY_APP_MISMATCH`; a malformed id or key is `E_REGISTRY_BAD_REQUEST`.
   * Resolves only once the new state is durable.
   */
  register(req: RegisterRequest): Promise<InstanceRecord>;
  /** Removes an instance and frees its IP; resolves true if it existed, once durable. */
  remove(instanceId: string): Promise<boolean>;
  /**
   * Sets (a policy) or clears (undefined) the operator's port policy override of an instance;
   * resolves the new record once durable. An unknown instance is `E_REGISTRY_UNKNOWN_INSTANCE`.
   */
  setPortPolicyOverride(
    instanceId: string,
    policy: PortPolicy | undefined,
  ): Promise<InstanceRecord>;
  /**
   * Takes an instance out of its app's rotation (`out`) or puts it back; resolves the new
   * record once durable. An unknown instance is `E_REGISTRY_UNKNOWN_INSTANCE`.
   */
  setOutOfRotation(instanceId: string, out: boolean): Promise<InstanceRecord>;
  /** The durable state: never shows a change whose write has not completed. */
  list(): readonly InstanceRecord[];
  get(instanceId: string): InstanceRecord | undefined;
  /**
   * Changes other writers made (other gateway hosts of a region), and this one's; absent on a
   * store only this process writes.
   */
  subscribe?(listener: (change: StoreChange) => void): () => void;
  /** Refuses new operations and waits until those already accepted are settled. */
  close(): Promise<void>;
}

export interface StoreChange {
  readonly upserted: readonly InstanceRecord[];
  readonly removed: readonly string[];
}

export type RegistryErrorCode =
  | "E_REGISTRY_KEY_IN_USE"
  | "E_REGISTRY_FULL"
  | "E_REGISTRY_APP_MISMATCH"
  | "E_REGISTRY_BAD_REQUEST"
  | "E_STATE_CORRUPT"
  | "E_STATE_READ"
  | "E_STATE_WRITE"
  | "E_STATE_CLOSED"
  | "E_CLUSTER_UNAVAILABLE"
  | "E_CLUSTER_CONFLICT"
  | "E_CLUSTER_CONFIG";

export interface FileStoreOptions {
  /** Clock for `registeredAt`/`updatedAt`, ms since the epoch. @default Date.now */
  readonly now?: () => number;
  /** Called after each durable write with what it committed (metrics, tests). */
  readonly onWrite?: (write: { operations: number; bytes: number }) => void;
}

export class FileRegistrationStore implements RegistrationStore {
  readonly #path: string;
  readonly #now: () => number;
  readonly #onWrite: FileStoreOptions["onWrite"];
  /** The durable state: what the file holds. */
  #state: RegistryState;
  #list: readonly InstanceRecord[] | undefined;
  readonly #group: GroupCommit;

  private constructor(path: string, state: RegistryState, options: FileStoreOptions) {
    this.#path = path;
    this.#state = state;
    this.#now = options.now ?? Date.now;
    this.#onWrite = options.onWrite;
    this.#group = new GroupCommit(
      (batch) => this.#commit(batch),
      () => new GatewayError("E_STATE_CLOSED", `registration store ${this.#path} is closed`),
    );
  }

  /**
   * Loads the state at `path` (missing = empty; its directory is created with mode 0700) and
   * removes temp files a crashed writer left. A file that cannot be used as it is (bad JSON,
   * other version, duplicate IPs or keys, an IP the current `net` would not hand out) is an
   * `E_STATE_CORRUPT` and is left untouched.
   */
  static async open(
    path: string,
    net: IpPlan,
    options: FileStoreOptions = {},
  ): Promise<FileRegistrationStore> {
    const file = resolve(path);
    const plan: IpPlan = {
      range: net.range,
      gatewayIp: net.gatewayIp,
      reserved: [...net.reserved],
    };
    await ensureDir(dirname(file));
    await removeStrayTemps(file);
    let text: string | undefined;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new GatewayError(
          "E_STATE_READ",
          `could not read state file ${file}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    const state =
      text === undefined ? RegistryState.empty(plan) : RegistryState.parse(text, plan, file);
    return new FileRegistrationStore(file, state, options);
  }

  get path(): string {
    return this.#path;
  }

  register(req: RegisterRequest): Promise<InstanceRecord> {
    return this.#group.register(req);
  }

  remove(instanceId: string): Promise<boolean> {
    return this.#group.remove(instanceId);
  }

  setPortPolicyOverride(instanceId: string, policy: PortPolicy | undefined) {
    return this.#group.setPortPolicyOverride(instanceId, policy);
  }

  setOutOfRotation(instanceId: string, out: boolean): Promise<InstanceRecord> {
    return this.#group.setOutOfRotation(instanceId, out);
  }

  list(): readonly InstanceRecord[] {
    this.#list ??= Object.freeze(this.#state.list());
    return this.#list;
  }

  get(instanceId: string): InstanceRecord | undefined {
    return this.#state.get(instanceId);
  }

  /** Refuses new operations and waits until those already accepted are written. */
  close(): Promise<void> {
    return this.#group.close();
  }

  /** Applies `batch` to a copy of the state, writes it once, then settles every operation. */
  async #commit(batch: Operation[]): Promise<void> {
    const draft = this.#state.clone();
    const now = this.#now();
    const outcomes = applyBatch(batch, draft, now);
    if (draft.version !== this.#state.version) {
      let data: string;
      try {
        data = draft.serialize();
        await writeFileAtomic(this.#path, data);
      } catch (cause) {
        const error = new GatewayError(
          "E_STATE_WRITE",
          `could not write state file ${this.#path}: ${(cause as Error).message}`,
          { cause },
        );
        for (const op of batch) op.reject(error);
        return;
      }
      this.#state = draft;
      this.#list = undefined;
      const onWrite = this.#onWrite;
      if (onWrite) {
        const write = { operations: batch.length, bytes: Buffer.byteLength(data) };
        queueMicrotask(() => onWrite(write));
      }
    }
    settle(batch, outcomes);
  }
}
