/**
 * Keeps HAProxy in step with the instance directory: one pass computes what it should hold
 * (`desired.ts`), sends the difference through the runtime API (`plan.ts`), and rewrites the
 * configuration and map files HAProxy would start from, so a restart serves the same.
 *
 * Passes are coalesced: a burst of directory changes (a region's registrations loaded at
 * start, a WireGuard poll updating every handshake) schedules one pass on the next tick, and a
 * change during a pass schedules one more after it. Health is the age of a handshake, which
 * changes with time alone: each pass arms a timer for the moment the first ready server turns
 * stale, so HAProxy stops sending it connections when the Node engine would. A timer runs a
 * pass every `tickMs` too: servers of removed instances are deleted once their last connection
 * ends, and custom domains leave the map when their TTL is over.
 *
 * The pool of backend slots is the only structure a registration can outgrow: then the
 * configuration is rendered with a bigger pool (twice, or what is needed) and HAProxy reloads
 * seamlessly (`reload` on the master CLI, listeners handed to the new worker).
 */
import { join } from "node:path";
import { writeFileAtomic } from "../../files/atomic.js";
import type { Logger } from "../../log/index.js";
import type { Instance } from "../../registry/index.js";
import type { HaproxyApi } from "./api.js";
import { type Desired, desiredState, serverKey } from "./desired.js";
import { FILES, instanceIdOf, MAPS, SLOT_PREFIX } from "./layout.js";
import { type Applied, type AppliedServer, mapFileText, planCommands } from "./plan.js";
import type { ServerLine } from "./render.js";

/** How often a pass runs without a directory change. */
export const DEFAULT_TICK_MS = 2_000;

export interface ReconcilerDeps {
  readonly api: HaproxyApi;
  readonly dir: string;
  readonly log: Logger;
  /** Every registered instance (the directory the registration keeps). */
  readonly instances: () => readonly Instance[];
  readonly healthyAgeMs: number;
  readonly proxyV2: (appId: string) => boolean;
  /** The configuration text for these servers and this many slots. */
  readonly render: (servers: ReadonlyMap<string, readonly ServerLine[]>, slots: number) => string;
  /** Seamless reload with the files as written; resolves when the new worker serves. */
  readonly reload: () => Promise<void>;
  readonly poolSize: number;
  readonly tickMs?: number;
  readonly now?: () => number;
}

const EMPTY_MAPS = {
  apps: new Map<string, string>(),
  instances: new Map<string, string>(),
  owners: new Map<string, string>(),
  custom: new Map<string, string>(),
};

export class Reconciler {
  readonly #deps: ReconcilerDeps;
  /** Custom domain → its TXT answer and until when it holds (ms since the epoch). */
  readonly #custom = new Map<string, { readonly value: string; readonly until: number }>();
  readonly #written = new Map<string, string>();
  #poolSize: number;
  #applied: Applied = { servers: new Map(), maps: EMPTY_MAPS };
  #timer: NodeJS.Timeout | undefined;
  /** The pass at the moment a ready server turns stale. */
  #staleTimer: NodeJS.Timeout | undefined;
  #scheduled = false;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #passes = 0;

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.#poolSize = deps.poolSize;
  }

  get poolSize(): number {
    return this.#poolSize;
  }

  /** Passes run so far (tests wait on it). */
  get passes(): number {
    return this.#passes;
  }

  mapFile(name: string): string {
    return join(this.#deps.dir, name);
  }

  /** Starts the periodic passes. */
  start(): void {
    this.#timer = setInterval(() => this.schedule(), this.#deps.tickMs ?? DEFAULT_TICK_MS);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#staleTimer);
  }

  /**
   * A custom domain's TXT answer (`<app-id>:<port>`) for `ttlMs` (the slow path resolved it
   * and says how long its cache holds it), or undefined to drop it. An entry leaves the map at
   * the first pass after it expires: the next connection goes to the slow path, which looks
   * the name up again and installs the fresh answer.
   */
  setCustomDomain(name: string, value: string | undefined, ttlMs = Number.POSITIVE_INFINITY): void {
    const held = this.#custom.get(name);
    if (value === undefined || ttlMs <= 0) this.#custom.delete(name);
    else this.#custom.set(name, { value, until: this.#now() + ttlMs });
    // The slow path reports every connection its cached answer routes: only a change of the
    // map's content needs a pass (expiry is the periodic pass's business).
    if (held?.value === (value !== undefined && ttlMs > 0 ? value : undefined)) return;
    this.schedule();
  }

  #now(): number {
    return (this.#deps.now ?? Date.now)();
  }

  /** One pass soon; calls during a tick coalesce into it. */
  schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.settle();
    });
  }

  /** Runs a pass now (or after the running one) and resolves when HAProxy is in step. */
  async settle(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#pass().catch((error: unknown) =>
            this.#deps.log.error({ err: error }, "haproxy: reconcile pass failed"),
          );
        } while (this.#again && !this.#stopped);
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  /** Reads what HAProxy holds (after a start, a restart, an adoption or a failed command). */
  async resync(): Promise<void> {
    const { api } = this.#deps;
    const servers = new Map<string, AppliedServer>();
    for (const s of await api.serversState()) {
      if (!s.backend.startsWith(SLOT_PREFIX)) continue;
      servers.set(serverKey(s.backend, s.name), {
        slot: s.backend,
        name: s.name,
        ip: s.address,
        ready: s.ready,
      });
    }
    const read = (name: string) => api.showMap(this.mapFile(name));
    this.#applied = {
      servers,
      maps: {
        apps: await read(MAPS.apps),
        instances: await read(MAPS.instances),
        owners: await read(MAPS.owners),
        custom: await read(MAPS.custom),
      },
    };
  }

  /** What the directory asks for now, slots kept where HAProxy has them. */
  desired(): Desired {
    const instances = this.#deps.instances();
    const byId = new Map(instances.map((i) => [i.id, i] as const));
    const previousSlots = new Map<string, string>();
    const busySlots = new Set<string>();
    for (const server of this.#applied.servers.values()) {
      const instance = byId.get(instanceIdOf(server.name));
      if (instance) previousSlots.set(instance.appId, server.slot);
      else busySlots.add(server.slot);
    }
    const nowMs = this.#now();
    const custom = new Map<string, string>();
    for (const [name, entry] of this.#custom) {
      if (entry.until > nowMs) custom.set(name, entry.value);
      else this.#custom.delete(name);
    }
    return desiredState({
      instances,
      nowMs,
      healthyAgeMs: this.#deps.healthyAgeMs,
      poolSize: this.#poolSize,
      previousSlots,
      busySlots,
      custom,
      proxyV2: this.#deps.proxyV2,
    });
  }

  /** Writes the configuration and map files for `desired` (only the ones that changed). */
  async writeFiles(desired: Desired, retiring: readonly AppliedServer[] = []): Promise<void> {
    const servers = new Map<string, ServerLine[]>();
    const add = (slot: string, line: ServerLine) => {
      const list = servers.get(slot) ?? [];
      list.push(line);
      servers.set(slot, list);
    };
    for (const s of desired.servers.values()) add(s.slot, s);
    for (const s of retiring) add(s.slot, { name: s.name, ip: s.ip, proxyV2: false, ready: false });
    for (const list of servers.values()) list.sort((a, b) => (a.name < b.name ? -1 : 1));
    await this.#write(FILES.config, this.#deps.render(servers, this.#poolSize));
    for (const name of ["apps", "instances", "owners", "custom"] as const) {
      await this.#write(MAPS[name], mapFileText(desired.maps[name]));
    }
  }

  async #write(name: string, text: string): Promise<void> {
    if (this.#written.get(name) === text) return;
    await writeFileAtomic(join(this.#deps.dir, name), text, 0o600);
    this.#written.set(name, text);
  }

  async #pass(): Promise<void> {
    if (this.#stopped) return;
    this.#passes++;
    let desired = this.desired();
    if (desired.slotsNeeded > this.#poolSize) {
      const grown = Math.max(2 * this.#poolSize, desired.slotsNeeded);
      this.#deps.log.info(
        { from: this.#poolSize, to: grown },
        "haproxy: backend slots ran out; reloading with a bigger pool",
      );
      this.#poolSize = grown;
      desired = this.desired();
      await this.writeFiles(desired, this.#retiring(desired));
      await this.#deps.reload();
      await this.resync();
      desired = this.desired();
    }
    const commands = planCommands(desired, this.#applied, this.#poolSize, (m) => this.mapFile(m));
    let failed = false;
    const kept = new Set<string>();
    for (const step of commands) {
      try {
        await this.#deps.api.run(step.command);
      } catch (error) {
        if (step.mayFail) {
          kept.add(step.command.slice("del server ".length));
          continue;
        }
        failed = true;
        this.#deps.log.error({ err: error }, "haproxy: runtime API command failed");
      }
    }
    const retiring = [...this.#applied.servers.entries()]
      .filter(([key]) => kept.has(key))
      .map(([, s]) => ({ ...s, ready: false }));
    if (failed) await this.resync();
    else this.#applied = appliedFrom(desired, retiring, this.#poolSize);
    await this.writeFiles(desired, retiring);
    this.#armStaleTimer(desired.staleAtMs);
  }

  #armStaleTimer(staleAtMs: number): void {
    clearTimeout(this.#staleTimer);
    if (!Number.isFinite(staleAtMs) || this.#stopped) return;
    // +1: isHealthy counts a handshake exactly healthyAgeMs old as stale already.
    const wait = Math.max(0, staleAtMs - this.#now()) + 1;
    this.#staleTimer = setTimeout(() => this.schedule(), wait);
    this.#staleTimer.unref();
  }

  /** Servers HAProxy holds for instances that are gone. */
  #retiring(desired: Desired): AppliedServer[] {
    return [...this.#applied.servers.entries()]
      .filter(([key]) => !desired.servers.has(key))
      .map(([, s]) => ({ ...s, ready: false }));
  }
}

/** What HAProxy holds once every command of a pass succeeded. */
function appliedFrom(
  desired: Desired,
  retiring: readonly AppliedServer[],
  poolSize: number,
): Applied {
  const servers = new Map<string, AppliedServer>();
  for (const [key, s] of desired.servers) {
    if (Number(s.slot.slice(s.slot.indexOf("_") + 1)) >= poolSize) continue;
    servers.set(key, { slot: s.slot, name: s.name, ip: s.ip, ready: s.ready });
  }
  for (const s of retiring) servers.set(serverKey(s.slot, s.name), s);
  return { servers, maps: desired.maps };
}
