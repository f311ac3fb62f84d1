/**
 * The directory → HAProxy state rules (desired.ts) and the commands that apply them (plan.ts):
 * what is ready, what routes through HAProxy and what is left to Node, slots kept per app,
 * and a removed instance retired without cutting its connections.
 */
import { describe, expect, it } from "vitest";
import {
  type DesiredInput,
  desiredState,
} from "../../../gateway-runtime/engine/haproxy/desired.js";
import {
  type Applied,
  mapFileText,
  planCommands,
} from "../../../gateway-runtime/engine/haproxy/plan.js";
import type { Instance } from "../../../gateway-runtime/registry/index.js";

const NOW = 1_000_000_000;
const AGE = 300_000;
const inst = (id: string, appId: string, ip: string, extra: Partial<Instance> = {}): Instance => ({
  id,
  appId,
  ip,
  lastHandshakeMs: NOW - 1_000,
  ...extra,
});

function desired(instances: Instance[], more: Partial<DesiredInput> = {}) {
  return desiredState({
    instances,
    nowMs: NOW,
    healthyAgeMs: AGE,
    poolSize: 4,
    previousSlots: new Map(),
    busySlots: new Set(),
    custom: new Map(),
    proxyV2: (app) => app === "cc",
    ...more,
  });
}

const none: Applied = {
  servers: new Map(),
  maps: { apps: new Map(), instances: new Map(), owners: new Map(), custom: new Map() },
};
const file = (name: string) => `/d/${name}`;

describe("desiredState", () => {
  it("makes healthy instances in rotation ready, the others maint", () => {
    const d = desired([
      inst("01", "aa", "10.0.0.1"),
      inst("02", "aa", "10.0.0.2", { lastHandshakeMs: NOW - AGE - 1 }),
      inst("03", "aa", "10.0.0.3", { outOfRotation: true }),
    ]);
    expect([...d.servers.values()].map((s) => [s.name, s.ready])).toEqual([
      ["i_01", true],
      ["i_02", false],
      ["i_03", false],
    ]);
    expect(d.maps.apps).toEqual(new Map([["aa", "app_0"]]));
    // An instance id reaches it whatever its health.
    expect([...d.maps.instances.keys()]).toEqual(["01", "02", "03"]);
  });

  it("leaves an app without a ready server, or with a port policy, to Node", () => {
    const d = desired([
      inst("01", "aa", "10.0.0.1", { lastHandshakeMs: 0 }),
      inst("02", "bb", "10.0.0.2", { portPolicy: { restrict_mode: true, ports: [] } }),
    ]);
    expect(d.maps.apps.size).toBe(0);
    expect(d.maps.instances.has("02")).toBe(false);
  });

  it("keeps an app's slot, gives new apps the lowest free one and counts what is needed", () => {
    const d = desired([inst("01", "aa", "10.0.0.1"), inst("02", "bb", "10.0.0.2")], {
      previousSlots: new Map([["bb", "app_0"]]),
      busySlots: new Set(["app_1"]),
    });
    expect(d.slots).toEqual(
      new Map([
        ["aa", "app_2"],
        ["bb", "app_0"],
      ]),
    );
    expect(d.slotsNeeded).toBe(3);
    const full = desired([inst("01", "aa", "1.1.1.1"), inst("02", "bb", "1.1.1.2")], {
      poolSize: 1,
    });
    expect(full.slotsNeeded).toBe(2);
    expect(full.maps.apps.has("bb")).toBe(false);
  });
});

describe("desiredState: when health next changes", () => {
  it("is when the oldest handshake among ready servers turns stale", () => {
    const d = desired([
      inst("a1", "aa", "10.0.0.1", { lastHandshakeMs: NOW - 5_000 }),
      inst("a2", "aa", "10.0.0.2", { lastHandshakeMs: NOW - 9_000 }),
      // Already stale, or out of rotation: no change to wait for.
      inst("b1", "bb", "10.0.0.3", { lastHandshakeMs: NOW - AGE - 1 }),
      inst("b2", "bb", "10.0.0.4", { lastHandshakeMs: NOW - 60_000, outOfRotation: true }),
    ]);
    expect(d.staleAtMs).toBe(NOW - 9_000 + AGE);
  });

  it("is never when no server is ready", () => {
    expect(desired([inst("b1", "bb", "10.0.0.3", { lastHandshakeMs: 0 })]).staleAtMs).toBe(
      Number.POSITIVE_INFINITY,
    );
  });
});

describe("planCommands", () => {
  it("adds servers before the map entries that point at them", () => {
    const d = desired([inst("01", "cc", "10.0.0.1")]);
    expect(planCommands(d, none, 4, file).map((c) => c.command)).toEqual([
      "add server app_0/i_01 10.0.0.1 send-proxy-v2",
      "set server app_0/i_01 state ready",
      "add map /d/apps.map cc app_0",
      "add map /d/instances.map 01 10.0.0.1",
      "add map /d/owners.map 01 cc",
    ]);
  });

  it("is empty when HAProxy holds what the directory asks", () => {
    const d = desired([inst("01", "aa", "10.0.0.1")]);
    const applied: Applied = {
      servers: new Map([
        ["app_0/i_01", { slot: "app_0", name: "i_01", ip: "10.0.0.1", ready: true }],
      ]),
      maps: d.maps,
    };
    expect(planCommands(d, applied, 4, file)).toEqual([]);
  });

  it("retires a removed instance: maint, then a delete that may wait for its connections", () => {
    const d = desired([inst("01", "aa", "10.0.0.1")]);
    const applied: Applied = {
      servers: new Map([
        ["app_0/i_01", { slot: "app_0", name: "i_01", ip: "10.0.0.1", ready: true }],
        ["app_0/i_02", { slot: "app_0", name: "i_02", ip: "10.0.0.2", ready: true }],
      ]),
      maps: { ...d.maps, instances: new Map([...d.maps.instances, ["02", "10.0.0.2"]]) },
    };
    expect(planCommands(d, applied, 4, file)).toEqual([
      { command: "del map /d/instances.map 02" },
      { command: "set server app_0/i_02 state maint" },
      { command: "del server app_0/i_02", mayFail: true },
    ]);
  });

  it("removes an app's map entry before its last server goes to maintenance", () => {
    const sick = desired([inst("01", "aa", "10.0.0.1", { lastHandshakeMs: 0 })]);
    const applied: Applied = {
      servers: new Map([
        ["app_0/i_01", { slot: "app_0", name: "i_01", ip: "10.0.0.1", ready: true }],
      ]),
      maps: { ...sick.maps, apps: new Map([["aa", "app_0"]]) },
    };
    expect(planCommands(sick, applied, 4, file).map((c) => c.command)).toEqual([
      "del map /d/apps.map aa",
      "set server app_0/i_01 state maint",
    ]);
  });

  it("writes map files sorted, one entry a line", () => {
    expect(
      mapFileText(
        new Map([
          ["b", "2"],
          ["a", "1"],
        ]),
      ),
    ).toBe("a 1\nb 2\n");
  });
});
