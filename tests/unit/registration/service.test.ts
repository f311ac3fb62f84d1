import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AppInfoJson } from "../../../gateway-runtime/attest/app-info.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import {
  RegistrationService,
  registrationSettings,
} from "../../../gateway-runtime/registration/index.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import { wgKey } from "../registry/net.js";
import { APP, CONFIG, failure, HOUR, type Harness, harness } from "./harness.js";

const I1 = "11".repeat(20);
const I2 = "22".repeat(20);
const I3 = "33".repeat(20);

let h: Harness;
beforeEach(async () => {
  h = await harness();
});
afterEach(() => h.cleanup());

const register = (instance: string, key: number, policy?: object) =>
  h.service.register(h.peer(h.cert(instance)), {
    client_public_key: wgKey(key),
    ...(policy ? { port_policy: policy as never } : {}),
  });

describe("RegistrationService.register", () => {
  it("answers dstack's RegisterCvmResponse and publishes the instance everywhere", async () => {
    const { response, record } = await register(I1, 1);
    expect(response).toEqual({
      wg: {
        client_ip: "10.4.0.32",
        servers: [
          { pk: CONFIG.core.wg.public_key, ip: "10.4.0.1/16", endpoint: "192.0.2.1:51820" },
        ],
      },
      agent: {
        external_port: 443,
        internal_port: 8090,
        domain: "app.test.example",
        app_address_ns_prefix: "_dstack-app-address",
      },
    });
    expect(record).toMatchObject({
      instanceId: I1,
      appId: APP,
      publicKey: wgKey(1),
      ip: "10.4.0.32",
    });
    expect(h.store.get(I1)?.ip).toBe("10.4.0.32");
    expect(h.directory.instance(I1)).toEqual({
      id: I1,
      appId: APP,
      ip: "10.4.0.32",
      lastHandshakeMs: 0,
    });
    expect(h.peers.calls).toEqual([[{ publicKey: wgKey(1), ip: "10.4.0.32" }]]);
  });

  it("keeps the address on re-registration, also with a new WireGuard key", async () => {
    const first = await register(I1, 1);
    await register(I2, 2);
    const again = await register(I1, 3);
    expect(again.response.wg.client_ip).toBe(first.response.wg.client_ip);
    expect(h.peers.last).toEqual([
      { publicKey: wgKey(3), ip: "10.4.0.32" },
      { publicKey: wgKey(2), ip: "10.4.0.33" },
    ]);
  });

  it("gives concurrent registrations distinct addresses and applies peers one call at a time", async () => {
    h.peers.delayMs = 5;
    const ids = Array.from({ length: 12 }, (_, k) => (k + 16).toString(16).repeat(20));
    const out = await Promise.all(ids.map((id, k) => register(id, 100 + k)));
    const ips = out.map((o) => o.response.wg.client_ip);
    expect(new Set(ips).size).toBe(12);
    expect(h.peers.maxActive).toBe(1);
    expect(h.peers.calls.length).toBeLessThanOrEqual(12); // coalesced when they overlap
    expect(h.peers.last?.map((p) => p.ip).sort()).toEqual([...ips].sort());
  });

  it("lets concurrent registrations share store writes (group commit), not one fsync each", async () => {
    const ids = Array.from({ length: 60 }, (_, k) => (k + 64).toString(16).repeat(20));
    const certs = ids.map((id) => h.peer(h.cert(id)));
    const before = h.writes.count;
    await Promise.all(
      certs.map((peer, k) => h.service.register(peer, { client_public_key: wgKey(300 + k) })),
    );
    expect(h.store.list()).toHaveLength(60);
    expect(h.writes.count - before).toBeLessThanOrEqual(6);
  });

  it("a re-registration racing a recycle ends registered and published", async () => {
    await register(I1, 1);
    h.clock.now += 11 * HOUR; // I1 is now stale
    const again = register(I1, 1);
    const recycled = h.service.recycle();
    await Promise.all([again, recycled]);
    expect(h.store.get(I1)?.instanceId).toBe(I1);
    expect(h.directory.instance(I1)?.id).toBe(I1);
  });

  it("asks the authorizer with dstack's AppInfo JSON and stores nothing when denied", async () => {
    const asked: AppInfoJson[] = [];
    await h.cleanup();
    h = await harness({
      authorizer: async (info) => {
        asked.push(info);
        throw new GatewayError("E_AUTH_DENIED", "no");
      },
    });
    const cert = h.cert(I1);
    expect(await failure(h.service.register(h.peer(cert), { client_public_key: wgKey(1) }))).toBe(
      "E_AUTH_DENIED",
    );
    expect(asked).toHaveLength(1);
    expect(asked[0]?.instance_id).toBe(I1);
    expect(asked[0]?.app_id).toBe(APP);
    expect(h.store.list()).toEqual([]);
    expect(h.peers.calls).toEqual([]);
    expect(h.directory.instance(I1)).toBeUndefined();
  });

  it("refuses an unattested caller before touching anything", async () => {
    const stranger = (await harness()).cert(I1);
    const code = await failure(
      h.service.register({ der: stranger.der, chain: [] }, { client_public_key: wgKey(1) }),
    );
    expect(code).toBe("E_ATTEST_UNTRUSTED");
    expect(h.store.list()).toEqual([]);
  });

  it("times every RegisterCvm for the metrics, by result", async () => {
    await register(I1, 1);
    const stranger = h.cert(I2);
    await failure(
      h.service.register({ der: stranger.der, chain: [] }, { client_public_key: wgKey(2) }),
    );
    const [histogram] = await h.service.latency.json();
    const count = (result: string) =>
      histogram?.values.find(
        (v) =>
          v.metricName === "gateway_registration_duration_seconds_count" &&
          v.labels.result === result,
      )?.value;
    expect([count("ok"), count("error")]).toEqual([1, 1]);
  });

  it("passes store refusals through (a key held by another instance)", async () => {
    await register(I1, 1);
    expect(await failure(register(I2, 1))).toBe("E_REGISTRY_KEY_IN_USE");
  });

  it("reports a WireGuard failure, keeps the record, and publishes it on the next success", async () => {
    h.peers.failWith = new Error("wg syncconf: exit 1");
    expect(await failure(register(I1, 1))).toBe("E_REGISTRATION_PEERS");
    expect(h.store.get(I1)).toBeDefined();
    expect(h.directory.instance(I1)).toBeUndefined();
    h.peers.failWith = undefined;
    const again = await register(I1, 1);
    expect(again.response.wg.client_ip).toBe("10.4.0.32");
    expect(h.directory.instance(I1)?.ip).toBe("10.4.0.32");
  });

  it("remembers the reported port policy per instance", async () => {
    await register(I1, 1, { ports: [{ port: 8080, pp: true }], restrict_mode: true });
    expect(h.service.portPolicy(I1)).toEqual({
      ports: [{ port: 8080, pp: true }],
      restrict_mode: true,
    });
    expect(h.service.portPolicy(I2)).toBeUndefined();
  });

  it("an operator's override is what the proxy applies, until cleared; re-registering keeps it", async () => {
    const reported = { ports: [{ port: 8080, pp: true }], restrict_mode: true };
    const lockdown = { ports: [], restrict_mode: true };
    await register(I1, 1, reported);
    expect(h.service.portPolicyView(I1)).toEqual({
      effective: reported,
      source: "instance",
      instance_reported: reported,
    });
    await h.service.overridePortPolicy(I1, lockdown);
    expect(h.directory.instance(I1)?.portPolicy).toEqual(lockdown);
    await register(I1, 1, reported);
    expect(h.service.portPolicyView(I1)).toEqual({
      effective: lockdown,
      source: "admin",
      instance_reported: reported,
      admin_override: lockdown,
    });
    expect(h.directory.instance(I1)?.portPolicy).toEqual(lockdown);
    await h.service.overridePortPolicy(I1, undefined);
    expect(h.directory.instance(I1)?.portPolicy).toEqual(reported);
    await register(I2, 2);
    expect(h.service.portPolicyView(I2)).toEqual({ source: "none" });
    await expect(h.service.overridePortPolicy("ffff", lockdown)).rejects.toMatchObject({
      code: "E_REGISTRY_UNKNOWN_INSTANCE",
    });
    expect(() => h.service.portPolicyView("ffff")).toThrow("is not registered");
  });
});

describe("RegistrationService operator calls", () => {
  it("setReady takes an instance out of rotation in the directory and back, across re-registration", async () => {
    await register(I1, 1);
    await h.service.setReady(I1, false);
    expect(h.directory.instance(I1)?.outOfRotation).toBe(true);
    await register(I1, 1);
    expect(h.directory.instance(I1)?.outOfRotation).toBe(true);
    await h.service.setReady(I1, true);
    expect(h.directory.instance(I1)).not.toHaveProperty("outOfRotation");
    await expect(h.service.setReady("ffff", false)).rejects.toMatchObject({
      code: "E_REGISTRY_UNKNOWN_INSTANCE",
    });
  });

  it("forceRemove frees the address and drops the WireGuard peer at once", async () => {
    const first = await register(I1, 1);
    await register(I2, 2);
    await h.service.forceRemove(I1);
    expect(h.store.get(I1)).toBeUndefined();
    expect(h.directory.instance(I1)).toBeUndefined();
    expect(h.peers.last?.map((p) => p.ip)).not.toContain(first.record.ip);
    const again = await register(I3, 3);
    expect(again.record.ip).toBe(first.record.ip);
    await expect(h.service.forceRemove(I1)).rejects.toMatchObject({
      code: "E_REGISTRY_UNKNOWN_INSTANCE",
    });
  });
});

describe("RegistrationService lifecycle", () => {
  it("start() loads stored instances into the directory and applies peers once", async () => {
    await register(I1, 1);
    await register(I2, 2);
    const directory = new MemoryDirectory();
    const fresh = new RegistrationService({
      ...registrationSettings(CONFIG),
      attestation: { verify: () => Promise.reject(new Error("unused")) },
      store: h.store,
      directory,
      peers: h.peers,
    });
    h.peers.calls.length = 0;
    await fresh.start();
    expect(h.peers.calls).toEqual([
      [
        { publicKey: wgKey(1), ip: "10.4.0.32" },
        { publicKey: wgKey(2), ip: "10.4.0.33" },
      ],
    ]);
    expect(directory.instance(I2)).toEqual({
      id: I2,
      appId: APP,
      ip: "10.4.0.33",
      lastHandshakeMs: 0,
    });
  });

  it("applyHandshakes feeds the directory by public key", async () => {
    await register(I1, 1);
    h.service.applyHandshakes(new Map([[wgKey(1), h.clock.now + 5_000]]));
    expect(h.directory.instance(I1)?.lastHandshakeMs).toBe(h.clock.now + 5_000);
  });

  it("info() answers dstack's InfoResponse", () => {
    expect(h.service.info()).toEqual({
      base_domain: "app.test.example",
      external_port: 443,
      app_address_ns_prefix: "_dstack-app-address",
      version: "0.1.0-test",
    });
  });
});

describe("RegistrationService.recycle", () => {
  it("removes instances quiet for longer than core.recycle.timeout and frees their addresses", async () => {
    const t0 = h.clock.now;
    expect(CONFIG.core.recycle.timeout).toBe(10 * HOUR);
    await register(I1, 1); // 10.4.0.32, will handshake
    await register(I2, 2); // 10.4.0.33, never handshakes
    h.service.applyHandshakes(new Map([[wgKey(1), t0 + 5 * HOUR]]));

    expect(await h.service.recycle(t0 + 10 * HOUR)).toEqual([]); // not longer than the timeout
    const calls = h.peers.calls.length;
    expect(await h.service.recycle(t0 + 10 * HOUR + 1)).toEqual([I2]);
    expect(h.store.get(I2)).toBeUndefined();
    expect(h.directory.instance(I2)).toBeUndefined();
    expect(h.peers.calls.length).toBe(calls + 1);
    expect(h.peers.last).toEqual([{ publicKey: wgKey(1), ip: "10.4.0.32" }]);

    // The freed address is the lowest free one again.
    h.clock.now = t0 + 11 * HOUR;
    expect((await register(I3, 3)).response.wg.client_ip).toBe("10.4.0.33");

    expect(await h.service.recycle(t0 + 15 * HOUR + 1)).toEqual([I1]);
    expect(h.store.list().map((r) => r.instanceId)).toEqual([I3]);
  });

  it("counts a re-registration as a sign of life", async () => {
    const t0 = h.clock.now;
    await register(I1, 1);
    h.clock.now = t0 + 9 * HOUR;
    await register(I1, 1);
    expect(await h.service.recycle(t0 + 10 * HOUR + 1)).toEqual([]);
    expect(await h.service.recycle(t0 + 19 * HOUR + 1)).toEqual([I1]);
  });

  it("does nothing, not even a WireGuard update, when nothing is stale", async () => {
    await register(I1, 1);
    const calls = h.peers.calls.length;
    expect(await h.service.recycle()).toEqual([]);
    expect(h.peers.calls.length).toBe(calls);
  });

  it("leaves an instance that registers during a recycle registered everywhere", async () => {
    const t0 = h.clock.now;
    await register(I1, 1);
    h.clock.now = t0 + 11 * HOUR;
    // I1 is stale when the recycle starts; its re-registration runs right after.
    const [removed, again] = await Promise.all([h.service.recycle(), register(I1, 1)]);
    expect(removed).toEqual([I1]);
    const ip = again.response.wg.client_ip;
    expect(h.store.get(I1)?.ip).toBe(ip);
    expect(h.directory.instance(I1)?.ip).toBe(ip);
    expect(h.peers.last).toEqual([{ publicKey: wgKey(1), ip }]);
    // And a recycle that comes after the re-registration keeps it.
    expect(await h.service.recycle()).toEqual([]);
  });
});
