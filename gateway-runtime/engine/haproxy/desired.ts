/**
 * What HAProxy should hold, computed from the instance directory: an app per backend slot, a
 * server per instance, and the map files' entries. Pure; `plan.ts` turns the difference with
 * what HAProxy holds into runtime API commands.
 *
 * The rules are the Node engine's (`proxy/select.ts`, `proxy/server.ts`):
 * - an app's server is `ready` while its instance is healthy (`isHealthy`, a WireGuard
 *   handshake younger than `healthy_handshake_age`) and not taken out of rotation, else
 *   `maint`: it takes no new connection, and the ones it has go on;
 * - a connection naming an instance id reaches it whatever its health (`instances.map`);
 * - an app is in `apps.map` only while it has a ready server: a name HAProxy could not serve
 *   goes to the Node data plane, which refuses it with the Node engine's error and counters;
 * - instances with a port policy that says something (restrict mode, or a PROXY choice per
 *   port) are left to Node, and so are their apps: HAProxy has one choice per server, not per
 *   port.
 */
import { type Instance, isHealthy } from "../../registry/index.js";
import { serverName, slotName } from "./layout.js";

export interface DesiredServer {
  readonly slot: string;
  readonly name: string;
  readonly instanceId: string;
  readonly appId: string;
  readonly ip: string;
  readonly proxyV2: boolean;
  readonly ready: boolean;
}

export interface MapContents {
  readonly apps: ReadonlyMap<string, string>;
  readonly instances: ReadonlyMap<string, string>;
  readonly owners: ReadonlyMap<string, string>;
  readonly custom: ReadonlyMap<string, string>;
}

export interface Desired {
  /** app id → slot name. */
  readonly slots: ReadonlyMap<string, string>;
  /** By `<slot>/<server>`. */
  readonly servers: ReadonlyMap<string, DesiredServer>;
  readonly maps: MapContents;
  /** Slots the pool must have to hold every app (more than it has: a reload with more). */
  readonly slotsNeeded: number;
  /**
   * When the first ready server turns stale if no handshake comes (Infinity if none is ready):
   * health changes with time alone, and the Node engine judges it at each connection, so a
   * pass must run then, not at the next periodic tick.
   */
  readonly staleAtMs: number;
}

export interface DesiredInput {
  readonly instances: readonly Instance[];
  readonly nowMs: number;
  readonly healthyAgeMs: number;
  /** Slots in the running configuration. */
  readonly poolSize: number;
  /** The slot each app had before: an app keeps its slot while it has servers there. */
  readonly previousSlots: ReadonlyMap<string, string>;
  /** Slots still holding servers of removed instances (their connections go on). */
  readonly busySlots: ReadonlySet<string>;
  /** Custom domains the runtime resolved: name → `<app-id>:<port>`. */
  readonly custom: ReadonlyMap<string, string>;
  readonly proxyV2: (appId: string) => boolean;
}

export const serverKey = (slot: string, name: string): string => `${slot}/${name}`;

/** A port policy HAProxy cannot follow (see above). */
function needsNode(instance: Instance): boolean {
  const policy = instance.portPolicy;
  if (policy === undefined) return false;
  return policy.restrict_mode || policy.ports.some((p) => p.pp !== undefined);
}

/** Slots for every app: the previous one kept, new apps on the lowest free one. */
function assignSlots(
  apps: readonly string[],
  input: DesiredInput,
): { slots: Map<string, string>; needed: number } {
  const slots = new Map<string, string>();
  const taken = new Set<string>(input.busySlots);
  for (const app of apps) {
    const previous = input.previousSlots.get(app);
    if (previous !== undefined) {
      slots.set(app, previous);
      taken.add(previous);
    }
  }
  let next = 0;
  for (const app of apps) {
    if (slots.has(app)) continue;
    while (taken.has(slotName(next))) next++;
    const slot = slotName(next);
    slots.set(app, slot);
    taken.add(slot);
  }
  let highest = -1;
  for (const slot of taken) highest = Math.max(highest, Number(slot.slice(slot.indexOf("_") + 1)));
  return { slots, needed: highest + 1 };
}

export function desiredState(input: DesiredInput): Desired {
  const byApp = new Map<string, Instance[]>();
  for (const instance of input.instances) {
    const list = byApp.get(instance.appId) ?? [];
    list.push(instance);
    byApp.set(instance.appId, list);
  }
  const apps = [...byApp.keys()].sort();
  const { slots, needed } = assignSlots(apps, input);
  const servers = new Map<string, DesiredServer>();
  const appsMap = new Map<string, string>();
  const instancesMap = new Map<string, string>();
  const owners = new Map<string, string>();
  let staleAtMs = Number.POSITIVE_INFINITY;
  for (const app of apps) {
    const slot = slots.get(app) as string;
    let anyReady = false;
    let slow = false;
    for (const instance of byApp.get(app) ?? []) {
      const ready = !instance.outOfRotation && isHealthy(instance, input.nowMs, input.healthyAgeMs);
      anyReady ||= ready;
      if (ready) staleAtMs = Math.min(staleAtMs, instance.lastHandshakeMs + input.healthyAgeMs);
      const name = serverName(instance.id);
      servers.set(serverKey(slot, name), {
        slot,
        name,
        instanceId: instance.id,
        appId: app,
        ip: instance.ip,
        proxyV2: input.proxyV2(app),
        ready,
      });
      if (needsNode(instance)) {
        slow = true;
        continue;
      }
      instancesMap.set(instance.id, instance.ip);
      owners.set(instance.id, app);
    }
    if (anyReady && !slow && Number(slot.slice(slot.indexOf("_") + 1)) < input.poolSize) {
      appsMap.set(app, slot);
    }
  }
  return {
    slots,
    servers,
    maps: { apps: appsMap, instances: instancesMap, owners, custom: new Map(input.custom) },
    slotsNeeded: needed,
    staleAtMs,
  };
}
