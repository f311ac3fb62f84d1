/**
 * The etcd registration store against one real etcd member: key layout, the registry rules
 * (same codes as the file store), two stores as two hosts, a view that follows other writers
 * (cluster.test.ts has several members, failures and compaction).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { IpPlan } from "../../../gateway-runtime/registry/allocate.js";
import { connectEtcd } from "../../../gateway-runtime/registry/etcd-client.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { openStore } from "../../../gateway-runtime/registration/store.js";
import { EtcdRegistrationStore } from "../../../gateway-runtime/registry/etcd-store.js";
import { FileRegistrationStore } from "../../../gateway-runtime/registry/store.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { freePort } from "../../../testkit/process.js";
import { type EtcdCluster, startEtcdCluster } from "../../../testkit/etcd.js";
import { until } from "../../../testkit/poll.js";
import { DEFAULT_PLAN, plan, wgKey } from "../../unit/registry/net.js";

let etcd: EtcdCluster;
let client: Etcd3;
let prefixNo = 0;
let prefix: string;
const clients: Etcd3[] = [];
const stores: EtcdRegistrationStore[] = [];

beforeAll(async () => {
  etcd = await startEtcdCluster(1);
  client = await connect();
}, 30_000);
afterAll(async () => {
  for (const c of clients) c.close();
  await etcd?.close();
});
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  prefixNo++;
});

async function connect(): Promise<Etcd3> {
  const c = await connectEtcd({
    endpoints: etcd.endpoints.map((u) => u.replace("http://", "")),
    timeoutMs: 2000,
  });
  clients.push(c);
  return c;
}

/** A store of a host; each test has its own prefix, so tests share the member. */
async function host(p: IpPlan = DEFAULT_PLAN, own = false): Promise<EtcdRegistrationStore> {
  prefix = `/test${prefixNo}/region`;
  const s = await EtcdRegistrationStore.open({
    client: own ? await connect() : client,
    prefix,
    plan: p,
    timeoutMs: 2000,
  });
  stores.push(s);
  return s;
}

const req = (n: number, appId = "app1") => ({ instanceId: `inst${n}`, appId, publicKey: wgKey(n) });
const keys = async () => (await client.getAll().prefix(`${prefix}/`).keys()).sort();

describe("EtcdRegistrationStore", () => {
  it("writes the record, its address and its key under the prefix in one transaction", async () => {
    let now = 1000;
    const s = await EtcdRegistrationStore.open({
      client,
      prefix: `/test${prefixNo}/region/`,
      plan: DEFAULT_PLAN,
      timeoutMs: 2000,
      now: () => now++,
    });
    stores.push(s);
    prefix = `/test${prefixNo}/region`;
    const a = await s.register(req(1));
    expect(a).toEqual({ ...req(1), ip: "10.4.0.32", registeredAt: 1000, updatedAt: 1000 });
    const keyName = Buffer.from(wgKey(1), "base64").toString("base64url");
    expect(await keys()).toEqual([
      `${prefix}/instances/inst1`,
      `${prefix}/ips/10.4.0.32`,
      `${prefix}/keys/${keyName}`,
    ]);
    expect(JSON.parse((await client.get(`${prefix}/instances/inst1`).string()) ?? "")).toEqual(a);
    expect(await client.get(`${prefix}/ips/10.4.0.32`).string()).toBe("inst1");
  });

  it("re-registration keeps the address and moves the key; removal frees both", async () => {
    const s = await host();
    const a = await s.register(req(1));
    const b = await s.register({ ...req(1), publicKey: wgKey(9) });
    expect(b.ip).toBe(a.ip);
    expect(b.registeredAt).toBe(a.registeredAt);
    const newKey = Buffer.from(wgKey(9), "base64").toString("base64url");
    expect(await keys()).toEqual([
      `${prefix}/instances/inst1`,
      `${prefix}/ips/${a.ip}`,
      `${prefix}/keys/${newKey}`,
    ]);
    expect(await s.remove("inst1")).toBe(true);
    expect(await s.remove("inst1")).toBe(false);
    expect(await keys()).toEqual([]);
    expect((await s.register(req(2))).ip).toBe(a.ip);
  });

  it("keeps the file store's rules and error codes", async () => {
    const s = await host(plan("10.9.0.0/30", "10.9.0.1"));
    await s.register(req(1));
    await expect(s.register({ ...req(2), publicKey: wgKey(1) })).rejects.toMatchObject({
      code: "E_REGISTRY_KEY_IN_USE",
    });
    await expect(s.register(req(1, "other"))).rejects.toMatchObject({
      code: "E_REGISTRY_APP_MISMATCH",
    });
    await expect(s.register({ ...req(3), publicKey: "nope" })).rejects.toMatchObject({
      code: "E_REGISTRY_BAD_REQUEST",
    });
    // 10.9.0.0/30: .1 is the gateway, .2 is taken, nothing is left.
    await expect(s.register(req(4))).rejects.toMatchObject({ code: "E_REGISTRY_FULL" });
  });

  it("two hosts racing for addresses never share one, and each sees the other's", async () => {
    const [a, b] = [await host(), await host(DEFAULT_PLAN, true)];
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, n) => (n % 2 ? a : b).register(req(n))),
    );
    expect(new Set(results.map((r) => r.ip)).size).toBe(40);
    for (const s of [a, b]) {
      await until("both views to hold all 40", () => s.list().length === 40, 5000);
      expect([...s.list()].sort(byId)).toEqual([...results].sort(byId));
    }
  });

  it("one public key registered on two hosts at once: exactly one wins, the other gets 409", async () => {
    const [a, b] = [await host(), await host(DEFAULT_PLAN, true)];
    for (let n = 0; n < 10; n++) {
      // Both views are empty for this key: only the transaction can refuse one of them.
      const results = await Promise.allSettled([
        a.register({ ...req(100 + n), publicKey: wgKey(n) }),
        b.register({ ...req(200 + n), publicKey: wgKey(n) }),
      ]);
      const refused = results.filter((r) => r.status === "rejected");
      expect(refused).toHaveLength(1);
      expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({
        code: "E_REGISTRY_KEY_IN_USE",
      });
    }
    await a.register(req(50));
    await expect(b.register(req(50, "other"))).rejects.toMatchObject({
      code: "E_REGISTRY_APP_MISMATCH",
    });
  });

  it("tells subscribers about changes other hosts make", async () => {
    const [a, b] = [await host(), await host(DEFAULT_PLAN, true)];
    const seen: string[] = [];
    b.subscribe((c) =>
      seen.push(...c.upserted.map((r) => `+${r.instanceId}`), ...c.removed.map((id) => `-${id}`)),
    );
    await a.register(req(1));
    await until("b to see inst1", () => b.get("inst1"), 5000);
    await a.remove("inst1");
    await until("b to see inst1 go", () => b.get("inst1") === undefined, 5000);
    expect(seen).toEqual(["+inst1", "-inst1"]);
  });

  it("a reported port policy reaches the other hosts with the record, and a new one replaces it", async () => {
    const [a, b] = [await host(), await host(DEFAULT_PLAN, true)];
    const policy = { restrict_mode: true, ports: [{ port: 443, pp: true }] };
    await a.register({ ...req(1), portPolicy: policy });
    await until("b to see inst1's policy", () => b.get("inst1")?.portPolicy, 5000);
    expect(b.get("inst1")?.portPolicy).toEqual(policy);
    await a.register(req(1));
    await until("b to see the policy gone", () => !b.get("inst1")?.portPolicy, 5000);
    expect(b.get("inst1")).not.toHaveProperty("portPolicy");
  });

  it("an instance taken out of rotation is out on every host, and back in on every host", async () => {
    const [a, b] = [await host(), await host()];
    await a.register(req(1));
    await until("b to see inst1", () => b.get("inst1"), 5000);
    await a.setOutOfRotation("inst1", true);
    await until("b to see inst1 out", () => b.get("inst1")?.outOfRotation, 5000);
    await b.register(req(1));
    expect(a.get("inst1")?.outOfRotation).toBe(true);
    await b.setOutOfRotation("inst1", false);
    await until("a to see inst1 back", () => !a.get("inst1")?.outOfRotation, 5000);
    expect(a.get("inst1")).not.toHaveProperty("outOfRotation");
  });

  it("the config chooses the store: the state file by default, etcd with core.cluster", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-store-choice-"));
    const base = withKey(minimalConfig(), "core.state_path", join(dir, "state.json"));
    const cluster = (endpoint: string) =>
      parseGatewayConfig(
        withKey(base, "core.cluster", {
          enabled: true,
          prefix: `/test${prefixNo}/chosen`,
          etcd: { endpoints: [endpoint], timeout: "2s" },
        }),
        "test",
      );
    try {
      const file = await openStore(parseGatewayConfig(base, "test"), DEFAULT_PLAN, silentLogger());
      expect(file).toBeInstanceOf(FileRegistrationStore);
      await file.close();
      const shared = await openStore(
        cluster((etcd.endpoints[0] as string).replace("http://", "")),
        DEFAULT_PLAN,
        silentLogger(),
      );
      expect(shared).toBeInstanceOf(EtcdRegistrationStore);
      expect((await shared.register(req(1))).ip).toBe("10.4.0.32");
      await shared.close();
      // No etcd there: the host does not start, and says why, within the timeout.
      const started = performance.now();
      await expect(
        openStore(cluster(`127.0.0.1:${await freePort()}`), DEFAULT_PLAN, silentLogger()),
      ).rejects.toMatchObject({ code: "E_CLUSTER_UNAVAILABLE" });
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a host becoming part of a region brings its state file's registrations into etcd, addresses kept, once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-store-move-"));
    const statePath = join(dir, "state.json");
    const config = (cluster: boolean) =>
      parseGatewayConfig(
        withKey(withKey(minimalConfig(), "core.state_path", statePath), "core.cluster", {
          enabled: cluster,
          prefix: `/test${prefixNo}/moved`,
          etcd: {
            endpoints: [(etcd.endpoints[0] as string).replace("http://", "")],
            timeout: "2s",
          },
        }),
        "test",
      );
    try {
      const alone = await openStore(config(false), DEFAULT_PLAN, silentLogger());
      await alone.register(req(1));
      await alone.register(req(2));
      await alone.remove("inst1");
      await alone.register(req(3));
      const before = [...alone.list()].sort(byId);
      await alone.close();

      const shared = await openStore(config(true), DEFAULT_PLAN, silentLogger());
      expect([...shared.list()].sort(byId)).toEqual(before);
      // What etcd holds, not just this host's view; and the next address is a free one.
      const other = await EtcdRegistrationStore.open({
        client,
        prefix: `/test${prefixNo}/moved`,
        plan: DEFAULT_PLAN,
        timeoutMs: 2000,
      });
      stores.push(other);
      expect([...other.list()].sort(byId)).toEqual(before);
      const fourth = await shared.register(req(4));
      expect(before.map((r) => r.ip)).not.toContain(fourth.ip);
      // Once: the file is set aside, so a region emptied later is not filled again from it.
      await shared.remove("inst2");
      await shared.remove("inst3");
      await shared.remove("inst4");
      await shared.close();
      const again = await openStore(config(true), DEFAULT_PLAN, silentLogger());
      expect(again.list()).toEqual([]);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const byId = (x: { instanceId: string }, y: { instanceId: string }) =>
  x.instanceId.localeCompare(y.instanceId);
