/**
 * CVM registration (ARCHITECTURE.md "Registration RPC"): attestation → authorization (when enabled) → durable store →
 * WireGuard peers → the directory the data plane reads → dstack's RegisterCvm response. Also
 * recycling: instances whose WireGuard peer stayed quiet for `core.recycle.timeout` are removed
 * from the store, the directory and WireGuard, which frees their addresses.
 *
 * Ordering: store changes (register, recycle removals) are serialized here, so a recycle never
 * removes an instance that re-registered after it was judged stale. WireGuard updates are
 * coalesced: one `setPeers` at a time, each with every record durable when it starts.
 */
import { appInfoJson } from "../attest/app-info.js";
import type { Attestation, VerifiedPeer } from "../attest/types.js";
import type { Authorizer } from "../auth/authorize.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import type { Instance } from "../registry/index.js";
import type {
  InstanceRecord,
  PortPolicy,
  RegistrationStore,
  StoreChange,
} from "../registry/store.js";
import type {
  GatewayNodeInfo,
  InfoResponse,
  RegisterCvmRequest,
  RegisterCvmResponse,
  WireGuardPeer,
} from "../rpc/wire.js";
import type { PeerCertificate } from "../rpc/server.js";
import { RegistrationLatency } from "./latency.js";
import type { DirectoryWriter, PeerApplier, RegistrationSettings } from "./settings.js";

export {
  type DirectoryWriter,
  type PeerApplier,
  type RegistrationSettings,
  registrationSettings,
  type WgPeer,
} from "./settings.js";

/** dstack's `GetInstancePortPolicyResponse`. */
export interface PortPolicyView {
  readonly effective?: PortPolicy;
  readonly source: "admin" | "instance" | "none";
  readonly instance_reported?: PortPolicy;
  readonly admin_override?: PortPolicy;
}

export interface RegistrationServiceOptions extends RegistrationSettings {
  readonly attestation: Attestation;
  /** Asked before admitting an app; undefined = `core.auth.enabled = false`. */
  readonly authorizer?: Authorizer | undefined;
  readonly store: RegistrationStore;
  readonly directory: DirectoryWriter;
  readonly peers: PeerApplier;
  /** All gateway nodes, for `servers` and `gateways` in clustered deployments. */
  readonly cluster?: () => { servers: WireGuardPeer[]; gateways: GatewayNodeInfo[] };
  /**
   * True while an operator has this node draining (dstack's status "down"): every registration
   * is refused with `E_NODE_DRAINING`, re-registrations too, as dstack does; a CVM keeps its
   * peers to the region's other nodes, and registers again through them.
   */
  readonly draining?: () => boolean;
  /** Reported by Info. @default "unknown" */
  readonly version?: string;
  /** @default Date.now */
  readonly now?: () => number;
  readonly log?: Logger;
}

export interface RegisterOutcome {
  readonly response: RegisterCvmResponse;
  readonly record: InstanceRecord;
  readonly peer: VerifiedPeer;
}

export class RegistrationService {
  /** RegisterCvm latency by result (the admin API's metrics read it). */
  readonly latency = new RegistrationLatency();
  readonly #o: RegistrationServiceOptions;
  readonly #now: () => number;
  /** Tail of the recycle queue; registrations wait for it. */
  #mutex: Promise<unknown> = Promise.resolve();
  /** Registrations writing to the store right now; a recycle waits for them. */
  readonly #inflight = new Set<Promise<unknown>>();
  /** The next `setPeers` not started yet, which later callers join. */
  #queuedSync: Promise<void> | undefined;
  #syncTail: Promise<void> = Promise.resolve();
  /** Latest WireGuard handshake per public key, ms since the epoch. */
  #handshakes: ReadonlyMap<string, number> = new Map();

  constructor(options: RegistrationServiceOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Loads every stored instance into the directory and applies the peers once. */
  async start(): Promise<void> {
    for (const r of this.#o.store.list()) this.#o.directory.upsert(this.#instance(r));
    this.#o.store.subscribe?.((change) => this.#follow(change));
    await this.#syncPeers();
  }

  /**
   * A change of a shared store, from any host: removed instances leave the directory at once,
   * new ones join it once their WireGuard peers are applied (the same order as `register`).
   */
  #follow(change: StoreChange): void {
    for (const id of change.removed) {
      this.#o.directory.remove(id);
    }
    this.#syncPeers().then(
      () => {
        for (const r of change.upserted) {
          const current = this.#o.store.get(r.instanceId);
          if (current?.publicKey === r.publicKey && current.ip === r.ip)
            this.#o.directory.upsert(this.#instance(current));
        }
      },
      (err: unknown) => this.#o.log?.error({ err }, "applying the region's peers failed"),
    );
  }

  /** RegisterCvm, timed for `latency` whatever its outcome. */
  async register(cert: PeerCertificate, req: RegisterCvmRequest): Promise<RegisterOutcome> {
    const start = performance.now();
    let ok = false;
    try {
      const outcome = await this.#register(cert, req);
      ok = true;
      return outcome;
    } finally {
      this.latency.observe((performance.now() - start) / 1000, ok);
    }
  }

  async #register(cert: PeerCertificate, req: RegisterCvmRequest): Promise<RegisterOutcome> {
    // First, before any attestation work: a front door retries elsewhere at once.
    if (this.#o.draining?.()) {
      throw new GatewayError(
        "E_NODE_DRAINING",
        "this gateway node is draining and takes no registrations; use another node of the region",
      );
    }
    const peer = await this.#o.attestation.verify(cert.der, cert.chain);
    if (this.#o.authorizer) await this.#o.authorizer(appInfoJson(peer.appInfo));
    const record = await this.#shared(() =>
      this.#o.store.register({
        instanceId: peer.instanceId,
        appId: peer.appId,
        publicKey: req.client_public_key,
        portPolicy: req.port_policy,
      }),
    );
    await this.#syncPeers();
    // Publish only what is still registered (a recycle may have run meanwhile).
    const current = this.#o.store.get(record.instanceId);
    if (current?.publicKey === record.publicKey && current.ip === record.ip) {
      this.#o.directory.upsert(this.#instance(current));
    }
    this.#o.log?.info(
      { appId: peer.appId, instanceId: peer.instanceId, ip: record.ip, via: peer.via },
      "cvm registered",
    );
    return { response: this.#response(record.ip), record, peer };
  }

  /** dstack's `Info`. */
  info(): InfoResponse {
    const { agent } = this.#o;
    return {
      base_domain: agent.domain,
      external_port: agent.external_port,
      app_address_ns_prefix: agent.app_address_ns_prefix,
      version: this.#o.version ?? "unknown",
    };
  }

  /** The port policy an instance reported at its latest registration, if any (it is stored). */
  portPolicy(instanceId: string): PortPolicy | undefined {
    return this.#o.store.get(instanceId)?.portPolicy;
  }

  /** dstack's `GetInstancePortPolicy`: the effective policy, where it comes from, and both parts. */
  portPolicyView(instanceId: string): PortPolicyView {
    const r = this.#o.store.get(instanceId);
    if (!r) {
      throw new GatewayError(
        "E_REGISTRY_UNKNOWN_INSTANCE",
        `instance ${JSON.stringify(instanceId)} is not registered`,
      );
    }
    const effective = r.portPolicyOverride ?? r.portPolicy;
    const source = r.portPolicyOverride ? "admin" : r.portPolicy ? "instance" : "none";
    return {
      ...(effective ? { effective } : {}),
      source,
      ...(r.portPolicy ? { instance_reported: r.portPolicy } : {}),
      ...(r.portPolicyOverride ? { admin_override: r.portPolicyOverride } : {}),
    };
  }

  /**
   * dstack's `Set/ClearInstancePortPolicy` (undefined clears): stored, so it holds across
   * restarts and re-registrations and reaches every host; applied to the proxy at once.
   */
  async overridePortPolicy(instanceId: string, policy: PortPolicy | undefined): Promise<void> {
    this.#republish(await this.#o.store.setPortPolicyOverride(instanceId, policy));
    this.#o.log?.info(
      { instanceId, override: policy ?? null },
      policy ? "port policy overridden" : "port policy override cleared",
    );
  }

  /**
   * Admin `SetInstanceReady`: `ready` false takes the instance out of its app's rotation, true
   * puts it back. Stored with the record, so it holds across restarts and re-registrations and
   * reaches every host of a region.
   */
  async setReady(instanceId: string, ready: boolean): Promise<void> {
    this.#republish(await this.#o.store.setOutOfRotation(instanceId, !ready));
    this.#o.log?.info(
      { instanceId },
      ready ? "instance back in rotation" : "instance taken out of rotation",
    );
  }

  /**
   * Admin `RemoveInstance`: removes a (stale) instance now, as a recycle would: its address is
   * free and its WireGuard peer gone once this resolves. A CVM still alive registers again.
   */
  async forceRemove(instanceId: string): Promise<void> {
    const removed = await this.#exclusive(() => this.#o.store.remove(instanceId));
    if (!removed) {
      throw new GatewayError(
        "E_REGISTRY_UNKNOWN_INSTANCE",
        `instance ${JSON.stringify(instanceId)} is not registered`,
      );
    }
    this.#o.directory.remove(instanceId);
    await this.#syncPeers();
    this.#o.log?.warn({ instanceId }, "instance removed by an operator");
  }

  /** The directory takes a changed record, unless the instance re-registered meanwhile. */
  #republish(record: InstanceRecord): void {
    const current = this.#o.store.get(record.instanceId);
    if (current?.publicKey === record.publicKey) this.#o.directory.upsert(this.#instance(current));
  }

  /** Records the latest handshakes (public key → ms since the epoch) for the directory and recycling. */
  applyHandshakes(handshakes: ReadonlyMap<string, number>): void {
    this.#handshakes = new Map(handshakes);
    for (const r of this.#o.store.list()) {
      const at = handshakes.get(r.publicKey);
      if (at !== undefined) this.#o.directory.setHandshake(r.instanceId, at);
    }
  }

  /** The latest handshake this host saw per registered instance (id → ms), for the region. */
  seenHandshakes(): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.#o.store.list()) {
      const at = this.#handshakes.get(r.publicKey);
      if (at !== undefined && at > 0) out.set(r.instanceId, at);
    }
    return out;
  }

  /**
   * Removes instances not seen for longer than the recycle timeout: "seen" is the latest of
   * this host's latest handshake, the latest (re-)registration and, in a region, the freshest
   * handshake another host reported (`elsewhere`, instance id → ms). Returns the removed ids.
   */
  async recycle(
    now: number = this.#now(),
    elsewhere: ReadonlyMap<string, number> = new Map(),
  ): Promise<string[]> {
    const removed = await this.#exclusive(async () => {
      const stale = this.#o.store.list().filter((r) => {
        const seen = Math.max(
          this.#handshakes.get(r.publicKey) ?? 0,
          elsewhere.get(r.instanceId) ?? 0,
          r.updatedAt,
        );
        return now - seen > this.#o.recycleTimeoutMs;
      });
      const gone = await Promise.all(stale.map((r) => this.#o.store.remove(r.instanceId)));
      const ids = stale.filter((_, k) => gone[k]).map((r) => r.instanceId);
      for (const id of ids) this.#o.directory.remove(id);
      return ids;
    });
    if (removed.length > 0) {
      this.#o.log?.info({ instances: removed }, `recycled ${removed.length} stale instances`);
      await this.#syncPeers();
    }
    return removed;
  }

  #instance(r: InstanceRecord): Instance {
    return {
      id: r.instanceId,
      appId: r.appId,
      ip: r.ip,
      lastHandshakeMs: this.#handshakes.get(r.publicKey) ?? 0,
      // Effective: the operator's override, else what the CVM reported (port-policy.ts).
      portPolicy: r.portPolicyOverride ?? r.portPolicy,
      ...(r.outOfRotation ? { outOfRotation: true } : {}),
    };
  }

  #response(clientIp: string): RegisterCvmResponse {
    const cluster = this.#o.cluster?.();
    return {
      wg: { client_ip: clientIp, servers: cluster?.servers ?? [{ ...this.#o.server }] },
      agent: { ...this.#o.agent },
      ...(cluster ? { gateways: cluster.gateways } : {}),
    };
  }

  /**
   * Registrations run side by side (so the store can group-commit them); a recycle runs alone:
   * it waits for the registrations in flight, and new ones wait for it.
   */
  async #shared<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      const recycling = this.#mutex;
      await recycling;
      if (recycling === this.#mutex) break;
    }
    const run = fn();
    this.#inflight.add(run);
    try {
      return await run;
    } finally {
      this.#inflight.delete(run);
    }
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const inflight = [...this.#inflight];
    const run = this.#mutex.then(() => Promise.allSettled(inflight)).then(fn);
    this.#mutex = run.catch(() => {});
    return run;
  }

  #syncPeers(): Promise<void> {
    if (this.#queuedSync) return this.#queuedSync;
    const run = this.#syncTail
      .catch(() => {})
      .then(() => {
        this.#queuedSync = undefined;
        const peers = this.#o.store.list().map((r) => ({ publicKey: r.publicKey, ip: r.ip }));
        return this.#o.peers.setPeers(peers);
      })
      .catch((cause: unknown) => {
        if (cause instanceof GatewayError) throw cause;
        throw new GatewayError(
          "E_REGISTRATION_PEERS",
          `could not apply WireGuard peers: ${(cause as Error).message}`,
          { cause },
        );
      });
    this.#queuedSync = run;
    this.#syncTail = run;
    return run;
  }
}
