/**
 * The region's certificate parts on a real etcd member (certs/cluster/): the renewal lock (one
 * holder, freed by release, by a dead holder's TTL, and lost when its lease is revoked), the
 * register's compare-and-write and watch, and one rate ledger shared by two hosts.
 */
import type { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdLock } from "../../../gateway-runtime/certs/cluster/etcd-lock.js";
import { EtcdRegister } from "../../../gateway-runtime/certs/cluster/etcd-register.js";
import { Ledger } from "../../../gateway-runtime/certs/ledger.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { connectEtcd } from "../../../gateway-runtime/registry/etcd-client.js";
import { type EtcdCluster, startEtcdCluster } from "../../../testkit/etcd.js";
import { until } from "../../../testkit/poll.js";
import { startTcpRelay } from "../../helpers/tcp-relay.js";

let etcd: EtcdCluster;
const clients: Etcd3[] = [];
let keyNo = 0;
const log = silentLogger();

beforeAll(async () => {
  etcd = await startEtcdCluster(1);
}, 30_000);
afterAll(async () => {
  for (const c of clients) c.close();
  await etcd?.close();
});

/** A host's own client, as each gateway host has. */
async function connect(endpoints = etcd.endpoints.map((u) => u.replace("http://", ""))) {
  const c = await connectEtcd({ endpoints, timeoutMs: 2000 });
  clients.push(c);
  return c;
}

const lockOn = (client: Etcd3, key: string, node: string) =>
  new EtcdLock({ client, key, node, ttlSeconds: 2, log });

describe("EtcdLock", () => {
  it("has one holder at a time; release frees it", async () => {
    const key = `/t/lock${keyNo++}`;
    const [ca, cb] = [await connect(), await connect()];
    const held = await lockOn(ca, key, "a").tryAcquire();
    expect(held).toBeDefined();
    expect(JSON.parse((await ca.get(key).string()) ?? "{}")).toMatchObject({ node: "a" });
    expect(await lockOn(cb, key, "b").tryAcquire()).toBeUndefined();
    await held?.release();
    expect(await ca.get(key).string()).toBeNull();
    const next = await lockOn(cb, key, "b").tryAcquire();
    expect(next).toBeDefined();
    await next?.release();
  });

  it("a holder that dies without releasing frees the lock at its TTL, not before", async () => {
    const key = `/t/lock${keyNo++}`;
    const url = new URL(etcd.endpoints[0] as string);
    const relay = await startTcpRelay({ host: url.hostname, port: Number(url.port) });
    const dying = await connect([relay.address]);
    expect(await lockOn(dying, key, "a").tryAcquire()).toBeDefined();
    await relay.cut(); // a crash: no release, no more keepalives
    const b = lockOn(await connect(), key, "b");
    const started = Date.now();
    expect(await b.tryAcquire()).toBeUndefined();
    const handle = await until("the dead holder's lock to expire", () => b.tryAcquire(), 8000, {
      everyMs: 200,
    });
    expect(Date.now() - started).toBeGreaterThan(1000);
    await handle.release();
  });

  it("a live holder keeps the lock past its TTL", async () => {
    const key = `/t/lock${keyNo++}`;
    const held = await lockOn(await connect(), key, "a").tryAcquire();
    await new Promise((r) => setTimeout(r, 3000));
    expect(await lockOn(await connect(), key, "b").tryAcquire()).toBeUndefined();
    expect(held?.lost?.aborted).toBe(false);
    await held?.release();
  });

  it("a revoked lease aborts the holder's `lost`; its late release leaves the next holder's key", async () => {
    const key = `/t/lock${keyNo++}`;
    const admin = await connect();
    const held = await lockOn(await connect(), key, "a").tryAcquire();
    const lease = (await admin.get(key).exec()).kvs[0]?.lease;
    expect(lease).toBeDefined();
    await admin.leaseClient.leaseRevoke({ ID: lease as string });
    await until("the holder to notice", () => held?.lost?.aborted, 5000);
    const next = await lockOn(await connect(), key, "b").tryAcquire();
    expect(next).toBeDefined();
    await held?.release();
    expect(JSON.parse((await admin.get(key).string()) ?? "{}")).toMatchObject({ node: "b" });
    await next?.release();
  });
});

describe("EtcdRegister", () => {
  it("writes only over the version read, and its watch sees every write", async () => {
    const key = `/t/reg${keyNo++}`;
    const a = new EtcdRegister(await connect(), key, { timeoutMs: 2000, log });
    const b = new EtcdRegister(await connect(), key, { timeoutMs: 2000, log });
    const seen: string[] = [];
    const stop = await b.watch((t) => seen.push(t));
    expect(await a.read()).toBeUndefined();
    expect(await a.write("one", 0)).toBe(true);
    const v1 = await b.read();
    expect(v1?.text).toBe("one");
    expect(await b.write("two", v1?.version ?? 0)).toBe(true);
    expect(await a.write("stale", v1?.version ?? 0)).toBe(false);
    expect(await a.write("stale", 0)).toBe(false);
    await until("the watch to deliver both writes", () => seen.length === 2, 5000);
    expect(seen).toEqual(["one", "two"]);
    await stop();
  });

  it("two hosts' ledgers on one key add up (a region's one allowance)", async () => {
    const key = `/t/ledger${keyNo++}`;
    const register = async () => new EtcdRegister(await connect(), key, { timeoutMs: 2000, log });
    const a = new Ledger(await register());
    const b = new Ledger(await register());
    const now = Date.now();
    await Promise.all([
      a.recordIssued(["x"], now),
      b.recordIssued(["x"], now + 1),
      a.recordFailures(["x"], now + 2),
      b.recordIssued(["x"], now + 3),
    ]);
    const data = await a.load();
    expect(data.issued.map((i) => i.at).sort()).toEqual([now, now + 1, now + 3]);
    expect(data.failures).toEqual([{ name: "x", at: now + 2 }]);
  });
});
