import type { PortPolicy } from "./store.js";
/**
 * What the data plane knows about registered CVM instances. Registration (RPC + WireGuard)
 * writes it; the proxy only reads it, through `InstanceDirectory`.
 */
export interface Instance {
  /** Instance id (lowercase hex). */
  readonly id: string;
  /** App id (lowercase hex) the instance belongs to. */
  readonly appId: string;
  /** The instance's WireGuard address: the only address the proxy ever connects to. */
  readonly ip: string;
  /** Latest WireGuard handshake, ms since the epoch; 0 when there was none. */
  readonly lastHandshakeMs: number;
  /** The port policy it reported at registration; absent: none (port-policy.ts). */
  readonly portPolicy?: PortPolicy | undefined;
  /**
   * An operator took it out of its app's rotation (admin `SetInstanceReady`): an app's
   * connections skip it, a connection naming its id still reaches it (to look into it).
   */
  readonly outOfRotation?: boolean | undefined;
}

/** Healthy: a WireGuard handshake younger than `healthyAgeMs` (`healthy_handshake_age`). */
export function isHealthy(instance: Instance, nowMs: number, healthyAgeMs: number): boolean {
  return instance.lastHandshakeMs > 0 && nowMs - instance.lastHandshakeMs < healthyAgeMs;
}

export interface InstanceDirectory {
  instance(id: string): Instance | undefined;
  appInstances(appId: string): readonly Instance[];
  /** Increases whenever instances are added or removed (not on handshakes). */
  readonly version: number;
}

/** An in-memory directory; the registration state keeps one up to date. */
export class MemoryDirectory implements InstanceDirectory {
  readonly #byId = new Map<string, Instance>();
  readonly #byApp = new Map<string, Instance[]>();
  #version = 0;
  readonly #listeners = new Set<() => void>();

  /** Calls `listener` after every change, handshake times included; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Every instance, in no particular order. */
  all(): Instance[] {
    return [...this.#byId.values()];
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }

  get version(): number {
    return this.#version;
  }

  instance(id: string): Instance | undefined {
    return this.#byId.get(id);
  }

  appInstances(appId: string): readonly Instance[] {
    return this.#byApp.get(appId) ?? [];
  }

  upsert(instance: Instance): void {
    this.remove(instance.id);
    this.#add(instance);
    this.#version++;
    this.#changed();
  }

  #add(instance: Instance): void {
    this.#byId.set(instance.id, instance);
    const list = this.#byApp.get(instance.appId) ?? [];
    list.push(instance);
    this.#byApp.set(instance.appId, list);
  }

  remove(id: string): void {
    const old = this.#byId.get(id);
    if (!old) return;
    this.#byId.delete(id);
    const rest = (this.#byApp.get(old.appId) ?? []).filter((i) => i.id !== id);
    if (rest.length > 0) this.#byApp.set(old.appId, rest);
    else this.#byApp.delete(old.appId);
    this.#version++;
    this.#changed();
  }

  /** Records a WireGuard handshake time; does not change `version`. */
  setHandshake(id: string, lastHandshakeMs: number): void {
    const old = this.#byId.get(id);
    if (!old || old.lastHandshakeMs === lastHandshakeMs) return;
    const updated = { ...old, lastHandshakeMs };
    this.#byId.set(id, updated);
    const list = this.#byApp.get(old.appId) ?? [];
    this.#byApp.set(
      old.appId,
      list.map((i) => (i.id === id ? updated : i)),
    );
    this.#changed();
  }

  /** Makes the directory exactly `instances` (a replica of another process's directory). */
  replaceAll(instances: readonly Instance[]): void {
    this.#byId.clear();
    this.#byApp.clear();
    for (const instance of instances) this.#add(instance);
    this.#version++;
    this.#changed();
  }
}

export { policyProxyHeader, portAllowed } from "./port-policy.js";
