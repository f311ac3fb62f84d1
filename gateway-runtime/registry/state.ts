/**
 * The registration state as a value: who holds which address and key, the rules for changing it,
 * and its versioned JSON form. Pure (no I/O), so any store (a file, etcd) applies the same rules.
 */
import { z } from "zod";
import { formatIpv4, parseIpv4 } from "../config/net.js";
import { GatewayError } from "../errors.js";
import { decodeWgKey } from "../keys/wireguard.js";
import { allocateIp, capacity, formatCidr, type IpPlan, isAllocatable } from "./allocate.js";
import type { InstanceRecord, PortPolicy, RegisterRequest } from "./store.js";

export const STATE_VERSION = 1;

const ID = /^[0-9A-Za-z_.-]{1,128}$/;

const portPolicySchema = z.strictObject({
  ports: z.array(z.strictObject({ port: z.number().int().min(1).max(65535), pp: z.boolean() })),
  restrict_mode: z.boolean(),
});

const recordSchema = z.strictObject({
  instanceId: z.string().regex(ID),
  appId: z.string().regex(ID),
  publicKey: z.string(),
  ip: z.string(),
  registeredAt: z.number().int().nonnegative(),
  updatedAt: z.number().int().nonnegative(),
  portPolicy: portPolicySchema.optional(),
  portPolicyOverride: portPolicySchema.optional(),
  outOfRotation: z.literal(true).optional(),
});
const fileSchema = z.strictObject({
  version: z.literal(STATE_VERSION),
  instances: z.array(recordSchema),
});

/** A WireGuard key in its one canonical base64 spelling (so one key cannot pass as two). */
function isCanonicalWgKey(text: string): boolean {
  return decodeWgKey(text)?.toString("base64") === text;
}

/**
 * The policy as a record field, copied and frozen; no key at all when none was reported, so a
 * record written before policies existed reads back the same.
 */
function withPolicy<K extends "portPolicy" | "portPolicyOverride">(
  key: K,
  policy: PortPolicy | undefined,
): { [k in K]?: PortPolicy } {
  if (policy === undefined) return {};
  const ports = policy.ports.map(({ port, pp }) => Object.freeze({ port, pp }));
  const frozen = Object.freeze({
    ports: Object.freeze(ports),
    restrict_mode: policy.restrict_mode,
  });
  return { [key]: frozen } as { [k in K]?: PortPolicy };
}

function ipOf(record: InstanceRecord): number {
  const ip = parseIpv4(record.ip);
  if (ip === undefined)
    throw new Error(`invariant: instance ${record.instanceId} has IP ${record.ip}`);
  return ip;
}

/** A record's key and address as this plan allows them; returns it frozen. */
function checkRecord(
  record: InstanceRecord,
  plan: IpPlan,
  corrupt: (reason: string) => Error,
): InstanceRecord {
  const id = record.instanceId;
  const ip = parseIpv4(record.ip);
  if (!isCanonicalWgKey(record.publicKey)) {
    throw corrupt(
      `instance ${id} has public key ${JSON.stringify(record.publicKey)}, not a WireGuard key`,
    );
  }
  if (ip === undefined || formatIpv4(ip) !== record.ip) {
    throw corrupt(`instance ${id} has IP ${JSON.stringify(record.ip)}, not an IPv4 address`);
  }
  if (!isAllocatable(plan, ip)) {
    const range = formatCidr(plan.range);
    const where =
      ip < plan.range.network || ip > plan.range.broadcast
        ? `outside core.wg.client_ip_range ${range}`
        : `which ${range} never hands out (network, broadcast, gateway IP or core.wg.reserved_net)`;
    throw corrupt(`instance ${id} has IP ${record.ip}, ${where}; did the WireGuard config change?`);
  }
  const { instanceId, appId, publicKey, registeredAt, updatedAt } = record;
  return Object.freeze({
    instanceId,
    appId,
    publicKey,
    ip: record.ip,
    registeredAt,
    updatedAt,
    ...withPolicy("portPolicy", record.portPolicy),
    ...withPolicy("portPolicyOverride", record.portPolicyOverride),
    ...(record.outOfRotation ? { outOfRotation: true as const } : {}),
  });
}

export class RegistryState {
  readonly #plan: IpPlan;
  readonly #byId: Map<string, InstanceRecord>;
  /** Public key → instance id. */
  readonly #byKey: Map<string, string>;
  readonly #taken: Set<number>;
  /** No address below this one is free: where the next allocation starts looking. */
  #from: number;
  #version: number;

  private constructor(plan: IpPlan, copyOf?: RegistryState) {
    this.#plan = plan;
    this.#byId = new Map(copyOf === undefined ? [] : copyOf.#byId);
    this.#byKey = new Map(copyOf === undefined ? [] : copyOf.#byKey);
    this.#taken = new Set(copyOf === undefined ? [] : copyOf.#taken);
    this.#from = copyOf === undefined ? plan.range.network : copyOf.#from;
    this.#version = copyOf === undefined ? 0 : copyOf.#version;
  }

  static empty(plan: IpPlan): RegistryState {
    return new RegistryState(plan);
  }

  /** A copy to apply a batch of changes to; the original stays as it was. */
  clone(): RegistryState {
    return new RegistryState(this.#plan, this);
  }

  /** Increases with every change. */
  get version(): number {
    return this.#version;
  }

  get(instanceId: string): InstanceRecord | undefined {
    return this.#byId.get(instanceId);
  }

  list(): InstanceRecord[] {
    return [...this.#byId.values()];
  }

  /** Registers or re-registers: an instance keeps its address, its public key may change. */
  register(req: RegisterRequest, now: number): InstanceRecord {
    for (const [field, value] of [
      ["instanceId", req.instanceId],
      ["appId", req.appId],
    ] as const) {
      if (!ID.test(value)) {
        throw new GatewayError(
          "E_REGISTRY_BAD_REQUEST",
          `${field} ${JSON.stringify(value)} is not an id`,
        );
      }
    }
    if (!isCanonicalWgKey(req.publicKey)) {
      throw new GatewayError(
        "E_REGISTRY_BAD_REQUEST",
        `public key ${JSON.stringify(req.publicKey)} is not a base64 WireGuard key`,
      );
    }
    const holder = this.#byKey.get(req.publicKey);
    if (holder !== undefined && holder !== req.instanceId) {
      throw new GatewayError(
        "E_REGISTRY_KEY_IN_USE",
        `public key ${req.publicKey} is already registered to instance ${holder}`,
      );
    }
    const old = this.#byId.get(req.instanceId);
    if (old && old.appId !== req.appId) {
      throw new GatewayError(
        "E_REGISTRY_APP_MISMATCH",
        `instance ${req.instanceId} is registered for app ${old.appId}, not ${req.appId}`,
      );
    }
    let ip = old?.ip;
    if (ip === undefined) {
      const n = allocateIp({ ...this.#plan, taken: this.#taken, from: this.#from });
      if (n === undefined) {
        throw new GatewayError(
          "E_REGISTRY_FULL",
          `no free address in core.wg.client_ip_range ${formatCidr(this.#plan.range)}: all ${capacity(this.#plan)} allocatable addresses are in use`,
        );
      }
      this.#from = n + 1;
      ip = formatIpv4(n);
    }
    const record: InstanceRecord = Object.freeze({
      instanceId: req.instanceId,
      appId: req.appId,
      publicKey: req.publicKey,
      ip,
      registeredAt: old?.registeredAt ?? now,
      updatedAt: now,
      ...withPolicy("portPolicy", req.portPolicy),
      ...withPolicy("portPolicyOverride", old?.portPolicyOverride),
      // The operator's decision, not the CVM's: a re-registration (a reboot) keeps it.
      ...(old?.outOfRotation ? { outOfRotation: true as const } : {}),
    });
    if (old) this.#byKey.delete(old.publicKey);
    this.#insert(record);
    return record;
  }

  /** Sets or clears an instance's port policy override; its address and key stay. */
  setPortPolicyOverride(
    instanceId: string,
    policy: PortPolicy | undefined,
    now: number,
  ): InstanceRecord {
    return this.#amend(instanceId, now, ({ portPolicyOverride: _, ...rest }) => ({
      ...rest,
      ...withPolicy("portPolicyOverride", policy),
    }));
  }

  /**
   * Takes an instance out of its app's rotation (`out`) or puts it back; it stays registered,
   * with its address, key and tunnel. No key at all while in rotation, so older records read
   * back the same.
   */
  setOutOfRotation(instanceId: string, out: boolean, now: number): InstanceRecord {
    return this.#amend(instanceId, now, ({ outOfRotation: _, ...rest }) => ({
      ...rest,
      ...(out ? { outOfRotation: true as const } : {}),
    }));
  }

  /** Replaces a registered instance's record by `change(old)`, `updatedAt` set to `now`. */
  #amend(
    instanceId: string,
    now: number,
    change: (old: InstanceRecord) => InstanceRecord,
  ): InstanceRecord {
    const old = this.#byId.get(instanceId);
    if (!old) {
      throw new GatewayError(
        "E_REGISTRY_UNKNOWN_INSTANCE",
        `instance ${JSON.stringify(instanceId)} is not registered`,
      );
    }
    const record: InstanceRecord = Object.freeze({ ...change(old), updatedAt: now });
    this.#byId.set(instanceId, record);
    this.#version++;
    return record;
  }

  /** Removes an instance and frees its address; false when there was no such instance. */
  remove(instanceId: string): boolean {
    const old = this.#byId.get(instanceId);
    if (!old) return false;
    const ip = ipOf(old);
    this.#byId.delete(instanceId);
    this.#byKey.delete(old.publicKey);
    this.#taken.delete(ip);
    this.#from = Math.min(this.#from, ip);
    this.#version++;
    return true;
  }

  /**
   * Makes `record` the state of its instance as another writer decided it (a clustered store's
   * view). Instances holding its address or key lose them: the writer's transaction proved they
   * no longer do, and their own newer state arrives later. Returns the ids removed that way.
   * A record of another shape, or one this plan would never hand out, is an `E_STATE_CORRUPT`
   * naming `source`.
   */
  put(record: unknown, source: string): string[] {
    const corrupt = (reason: string) =>
      new GatewayError("E_STATE_CORRUPT", `${source} is unusable: ${reason}`);
    const parsed = recordSchema.safeParse(record);
    if (!parsed.success) throw corrupt(parsed.error.issues[0]?.message ?? "not a record");
    const checked = checkRecord(parsed.data, this.#plan, corrupt);
    this.remove(checked.instanceId);
    const evicted = this.list()
      .filter((r) => r.ip === checked.ip || r.publicKey === checked.publicKey)
      .map((r) => r.instanceId);
    for (const id of evicted) this.remove(id);
    this.#insert(checked);
    return evicted;
  }

  #insert(record: InstanceRecord): void {
    this.#byId.set(record.instanceId, record);
    this.#byKey.set(record.publicKey, record.instanceId);
    this.#taken.add(ipOf(record));
    this.#version++;
  }

  /** The file form: versioned JSON, one instance per line. */
  serialize(): string {
    const lines = this.list().map((r) => JSON.stringify(r));
    return `{"version":${STATE_VERSION},"instances":[\n${lines.join(",\n")}\n]}\n`;
  }

  /**
   * Reads the file form. Anything wrong (syntax, version, shape, duplicates, an address this
   * plan would never hand out) is an `E_STATE_CORRUPT` naming `file` and the reason: records are
   * never dropped silently, since a dropped record means an address handed out twice.
   */
  static parse(text: string, plan: IpPlan, file: string): RegistryState {
    const corrupt = (reason: string, cause?: unknown) =>
      new GatewayError(
        "E_STATE_CORRUPT",
        `state file ${file} is unusable: ${reason}; the file was left untouched`,
        cause === undefined ? undefined : { cause },
      );
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw corrupt(`not valid JSON (${(err as Error).message})`, err);
    }
    const version = (json as { version?: unknown } | null)?.version;
    if (version !== STATE_VERSION) {
      throw corrupt(
        `version ${JSON.stringify(version)} where this gateway reads version ${STATE_VERSION}`,
      );
    }
    const parsed = fileSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const at = issue?.path
        .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
        .join("");
      throw corrupt(`${at ? at.replace(/^\./, "") : "file"}: ${issue?.message ?? "invalid"}`);
    }
    const state = RegistryState.empty(plan);
    for (const record of parsed.data.instances) {
      const id = record.instanceId;
      const checked = checkRecord(record, plan, corrupt);
      const ip = ipOf(checked);
      if (state.#byId.has(id)) throw corrupt(`instance ${id} appears twice`);
      if (state.#taken.has(ip)) {
        const holder = state.list().find((r) => r.ip === record.ip)?.instanceId;
        throw corrupt(`instances ${holder} and ${id} share IP ${record.ip}`);
      }
      const keyHolder = state.#byKey.get(record.publicKey);
      if (keyHolder !== undefined) {
        throw corrupt(`instances ${keyHolder} and ${id} share public key ${record.publicKey}`);
      }
      state.#insert(checked);
    }
    return state;
  }
}
