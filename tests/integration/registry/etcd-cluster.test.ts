/**
 * A region of gateway hosts on a three-member etcd cluster when members fail: one member down
 * (quorum holds, registrations go on), quorum lost (registrations fail with
 * E_CLUSTER_UNAVAILABLE, the views keep serving, everything resumes when quorum returns), a host
 * whose watch resumes after etcd compacted the history it needs (it reloads), and a host's
 * WireGuard peers and directory following registrations made on another host.
 */
import type { Etcd3 } from "etcd3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Attestation } from "../../../gateway-runtime/attest/types.js";
import {
  RegistrationService,
  registrationSettings,
} from "../../../gateway-runtime/registration/index.js";
import type { EtcdRegistrationStore } from "../../../gateway-runtime/registry/etcd-store.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import { type EtcdCluster, startEtcdCluster } from "../../../testkit/etcd.js";
import { until } from "../../../testkit/poll.js";
import { wgKey } from "../../unit/registry/net.js";
import { CONFIG, FakePeers } from "../../unit/registration/harness.js";
import { byId, client, openHost, sharedSet, TIMEOUT_MS } from "./etcd-hosts.js";

let etcd: EtcdCluster;
let admin: Etcd3;
let prefixNo = 0;
let prefix: string;
const hosts: EtcdRegistrationStore[] = [];

beforeAll(async () => {
  etcd = await startEtcdCluster(3);
  admin = await client(etcd);
}, 30_000);
afterAll(async () => {
  admin?.close();
  await etcd?.close();
});
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  // Every test leaves the cluster whole for the next one.
  for (let k = 0; k < 3; k++) {
    etcd.thaw(k);
    await etcd.start(k);
  }
  await etcd.healthy();
  prefixNo++;
}, 30_000);

async function host(members?: number[]): Promise<EtcdRegistrationStore> {
  prefix = `/cluster${prefixNo}`;
  const h = await openHost(etcd, prefix, members ? { members } : {});
  hosts.push(h);
  return h;
}

/** Which member leads now. */
async function leaderIndex(): Promise<number> {
  const { leader } = await admin.maintenance.status();
  const { members } = await admin.cluster.memberList({});
  const name = members.find((m) => m.ID === leader)?.name;
  const index = etcd.members.findIndex((m) => m.name === name);
  if (index < 0) throw new Error(`no member leads (leader id ${leader})`);
  return index;
}

const req = (n: number) => ({ instanceId: `i${n}`, appId: "app1", publicKey: wgKey(n) });
const sorted = (h: EtcdRegistrationStore) => JSON.stringify([...h.list()].sort(byId));
const converged = async (...hs: EtcdRegistrationStore[]) => {
  const shared = JSON.stringify(await sharedSet(admin, prefix));
  return hs.every((h) => sorted(h) === shared);
};

describe("etcd region: member failures", () => {
  it("the leader down: quorum holds and every host still registers", async () => {
    const [a, b, c] = [await host(), await host(), await host()];
    await a.register(req(1));
    // The worst member to lose: writes wait for the others to elect a new leader.
    await etcd.kill(await leaderIndex());
    const done = await Promise.all([a, b, c].map((h, k) => h.register(req(10 + k))));
    expect(new Set(done.map((r) => r.ip)).size).toBe(3);
    await until("the views to converge", () => converged(a, b, c), 10_000);
    expect(a.list()).toHaveLength(4);
  }, 30_000);

  it("quorum lost: registrations fail with E_CLUSTER_UNAVAILABLE, views serve, then resume", async () => {
    const [a, b] = [await host(), await host()];
    const first = await a.register(req(1));
    await until("b to see i1", () => b.get("i1"), 5000);
    await etcd.kill(1);
    await etcd.kill(2);
    for (const attempt of [() => a.register(req(2)), () => b.remove("i1")]) {
      const started = performance.now();
      await expect(attempt()).rejects.toMatchObject({ code: "E_CLUSTER_UNAVAILABLE" });
      // Bounded: at most three attempts of TIMEOUT_MS, not a hang.
      expect(performance.now() - started).toBeLessThan(3 * TIMEOUT_MS + 2000);
    }
    // Routing reads the views, which keep what they had.
    expect(a.get("i1")).toEqual(first);
    expect(b.get("i1")).toEqual(first);

    await etcd.start(1);
    await etcd.start(2);
    await etcd.healthy();
    const second = await until(
      "a registration to succeed again",
      () => a.register(req(2)),
      15_000,
      { everyMs: 200 },
    );
    expect(second.ip).not.toBe(first.ip);
    await until("b's watch to resume and see i2", () => b.get("i2"), 15_000);
    await until("the views to converge", () => converged(a, b), 10_000);
  }, 60_000);

  it("a member cut off silently: hosts still register, and follow the region again", async () => {
    const [a, b] = [await host(), await host()];
    // Whichever member b's watch and a's requests use, one of these freezes it.
    for (const m of [0, 1, 2]) {
      etcd.freeze(m);
      const r = await until(
        `a registration with member ${m} frozen`,
        () => a.register(req(20 + m)),
        20_000,
      );
      // A watch on the frozen member notices after one keepalive round (KEEPALIVE_MS +
      // TIMEOUT_MS); etcd3 reconnects it to a member picked at random, and one that landed on
      // the frozen member again is moved to a new connection after 2 * TIMEOUT_MS + 2 s.
      await until(
        `b to see ${r.instanceId} with member ${m} frozen`,
        () => b.get(r.instanceId),
        60_000,
      );
      etcd.thaw(m);
      await etcd.healthy();
    }
    await until("the views to converge", () => converged(a, b), 10_000);
  }, 240_000);

  it("a host whose watch must resume from compacted history reloads everything", async () => {
    const a = await host([0]);
    const b = await host([2]);
    await a.register(req(1));
    await until("b to see i1", () => b.get("i1"), 5000);
    await etcd.kill(2);
    await etcd.healthy();
    await a.register(req(2));
    await a.remove("i1");
    const { header } = await admin.get("compact").exec();
    await admin.kv.compact({ revision: header.revision, physical: true });
    expect(b.get("i1")).toBeDefined();
    await etcd.start(2);
    await until("b to reload after the compaction", () => !b.get("i1") && b.get("i2"), 20_000);
    await until("the views to converge", () => converged(a, b), 10_000);
  }, 60_000);

  it("a host applies registrations of other hosts to its WireGuard peers and directory", async () => {
    const [a, b] = [await host(), await host()];
    const peers = new FakePeers();
    const directory = new MemoryDirectory();
    const service = new RegistrationService({
      ...registrationSettings(CONFIG),
      attestation: {} as Attestation,
      store: b,
      directory,
      peers,
    });
    await service.start();
    const r = await a.register(req(1));
    await until("b's directory to route to i1", () => directory.instance("i1"), 5000);
    expect(peers.last).toEqual([{ publicKey: r.publicKey, ip: r.ip }]);
    expect(directory.instance("i1")).toMatchObject({ appId: "app1", ip: r.ip });
    await a.remove("i1");
    await until("b's peers to drop i1", () => peers.last?.length === 0, 5000);
    expect(directory.instance("i1")).toBeUndefined();
  }, 30_000);
});
