/**
 * The region's gateway nodes on a real etcd member: records that live and die with their lease,
 * RegisterCvm's servers, draining (set from any host, kept across restarts, refused with its
 * code), the admin calls, and recycling on one elected host from every host's handshakes.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AdminServer,
  resolveAdminAuth,
  statusResponse,
} from "../../../gateway-runtime/admin/index.js";
import { NodeMembership, type NodeRecord, nodeId } from "../../../gateway-runtime/cluster/index.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { recycleOnce, regionPeers } from "../../../gateway-runtime/registration/region.js";
import { EtcdRegistrationStore } from "../../../gateway-runtime/registry/etcd-store.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { type EtcdCluster, startEtcdCluster } from "../../../testkit/etcd.js";
import { until } from "../../../testkit/poll.js";
import { adminView } from "../../unit/admin/view.js";
import { failure, HOUR, harness, type Harness } from "../../unit/registration/harness.js";
import { DEFAULT_PLAN, wgKey } from "../../unit/registry/net.js";
import { client, TIMEOUT_MS } from "./etcd-hosts.js";

const TTL_S = 2;
const TOKEN = "a-token-of-24-characters";
const I1 = "11".repeat(20);
const I2 = "22".repeat(20);

let etcd: EtcdCluster;
let prefixNo = 0;
let prefix: string;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  etcd = await startEtcdCluster(1);
}, 30_000);
afterAll(async () => {
  await etcd?.close();
});
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step();
  prefixNo++;
});

const record = (name: string, k: number): NodeRecord => ({
  name,
  wg_public_key: wgKey(100 + k),
  wg_ip: `10.4.0.${k}/16`,
  wg_endpoint: `${name}.example:51820`,
  url: "",
  version: "test",
  started_at: 1,
});

/** A host joining the region. */
async function join(name: string, k: number): Promise<{ m: NodeMembership }> {
  prefix = `/nodes${prefixNo}/region`;
  const m = await NodeMembership.open({
    client: await client(etcd),
    ownsClient: true,
    prefix,
    self: record(name, k),
    ttlS: TTL_S,
    timeoutMs: TIMEOUT_MS,
  });
  cleanups.push(() => m.close());
  return { m };
}

/** A host that died: its record under a lease nobody renews any more. */
async function deadHost(name: string, k: number): Promise<void> {
  const c = await client(etcd);
  cleanups.push(() => c.close());
  const lease = c.lease(TTL_S, { autoKeepAlive: false });
  await lease.put(`${prefix}/nodes/${name}`).value(JSON.stringify(record(name, k)));
}

const names = (m: NodeMembership) => m.nodes().map((n) => n.name);

describe("gateway nodes in etcd", () => {
  it("appear when a host joins, stay while it lives, leave when it stops or dies", async () => {
    const { m: a } = await join("gw1", 1);
    const { m: b } = await join("gw2", 2);
    await deadHost("gw3", 3);
    await until("gw1 to see all three", () => names(a).length === 3, 5000);
    expect(names(a)).toEqual(["gw1", "gw2", "gw3"]);
    const died = performance.now();
    await until(
      "gw3's record gone with its lease",
      () => !names(a).includes("gw3"),
      4 * TTL_S * 1000,
    );
    // Not before the lease ran out: only its expiry removes a silent host.
    expect(performance.now() - died).toBeGreaterThan(TTL_S * 1000 - 700);
    // The living renew theirs, well past the TTL.
    await new Promise((resolve) => setTimeout(resolve, 1.5 * TTL_S * 1000));
    expect(names(a)).toEqual(["gw1", "gw2"]);
    await b.close();
    await until("gw2's record gone at once (revoked)", () => !names(a).includes("gw2"), 1000);
  }, 20_000);

  it("list every live node that is up in RegisterCvm's servers, this host first", async () => {
    const { m: a } = await join("gw2", 2);
    const { m: b } = await join("gw1", 1);
    await join("gw3", 3);
    await until("gw2 to see all three", () => names(a).length === 3, 5000);
    const peers = regionPeers(a);
    expect(peers().servers.map((s) => s.ip)).toEqual(["10.4.0.2/16", "10.4.0.1/16", "10.4.0.3/16"]);
    expect(peers().gateways.map((g) => g.id)).toEqual(["gw2", "gw1", "gw3"].map(nodeId));
    // Drained from another host: left out of every host's lists.
    await b.setStatus("gw3", "down");
    await until("gw3 draining seen by gw2", () => a.status("gw3") === "down", 3000);
    expect(peers().servers.map((s) => s.ip)).toEqual(["10.4.0.2/16", "10.4.0.1/16"]);
    expect(peers().gateways).toHaveLength(2);
    // Status still lists it, as draining.
    const status = statusResponse(adminView(), { url: "", bootnode: "" }, a);
    expect(status.id).toBe(nodeId("gw2"));
    expect(status.nodes.map((n) => [n.name, n.status])).toEqual([
      ["gw1", "up"],
      ["gw2", "up"],
      ["gw3", "down"],
    ]);
  }, 20_000);

  it("refuse registrations on a draining node, also after its restart, until it is up again", async () => {
    const { m: a } = await join("gw1", 1);
    const { m: b } = await join("gw2", 2);
    let current = a;
    const h: Harness = await harness({ service: { draining: () => current.draining } });
    cleanups.push(() => h.cleanup());
    const register = () => h.service.register(h.peer(h.cert(I1)), { client_public_key: wgKey(1) });
    await b.setStatus("gw1", "down");
    await until("gw1 to see itself draining", () => a.draining, 3000);
    expect(await failure(register())).toBe("E_NODE_DRAINING");
    await a.close();
    current = (await join("gw1", 1)).m;
    expect(current.draining).toBe(true);
    expect(await failure(register())).toBe("E_NODE_DRAINING");
    await current.setStatus("gw1", "up");
    await until("gw1 up again", () => !current.draining, 3000);
    expect((await register()).record.instanceId).toBe(I1);
  }, 20_000);

  it("take SetNodeStatus only with the admin credentials and a well-formed body", async () => {
    const { m: a } = await join("gw1", 1);
    await join("gw2", 2);
    await until("both nodes", () => names(a).length === 2, 5000);
    const config = parseGatewayConfig(
      withKey(minimalConfig(), "core.admin", { auth_token: TOKEN }),
      "t",
    );
    const server = await AdminServer.start({
      listen: { address: "127.0.10.2", port: 0 },
      auth: await resolveAdminAuth(config.core.admin, {}),
      urls: { url: "", bootnode: "" },
      sources: { view: async () => adminView(), reloadCertificate: async () => {}, region: a },
      log: silentLogger(),
    });
    cleanups.push(() => server.close());
    const base = `http://127.0.10.2:${(server.address() as { port: number }).port}/prpc/Admin.`;
    const call = (method: string, body: unknown, token: string | null = TOKEN) =>
      fetch(`${base}${method}?json`, {
        method: "POST",
        body: JSON.stringify(body),
        headers: token ? { authorization: `Bearer ${token}` } : {},
        signal: AbortSignal.timeout(5000),
      });
    const down = { id: nodeId("gw2"), status: "down" };
    expect((await call("SetNodeStatus", down, null)).status).toBe(401);
    expect(a.status("gw2")).toBe("up");
    for (const bad of [{ id: nodeId("gw2") }, { id: nodeId("gw2"), status: "off" }, "x"]) {
      const res = await call("SetNodeStatus", bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe("E_RPC_BAD_REQUEST");
    }
    expect((await call("SetNodeStatus", { id: 12345, status: "down" })).status).toBe(404);
    const ok = await call("SetNodeStatus", down);
    expect([ok.status, await ok.json()]).toEqual([200, {}]);
    await until("gw2 draining", () => a.status("gw2") === "down", 3000);
    const statuses = await (await call("GetNodeStatuses", {})).json();
    expect(statuses).toEqual({ statuses: [{ node_id: nodeId("gw2"), status: "down" }] });
    const status = (await (await call("Status", {})).json()) as { nodes: { name: string }[] };
    expect(status.nodes.map((n) => n.name)).toEqual(["gw1", "gw2"]);
    await call("SetNodeStatus", { name: "gw2", status: "up" });
    await until("gw2 up", () => a.status("gw2") === "up", 3000);
  }, 20_000);

  it("recycle on one host, only instances no host saw within the timeout", async () => {
    const { m: a } = await join("gw1", 1);
    const { m: b } = await join("gw2", 2);
    const clock = { now: Date.parse("2026-01-01T00:00:00Z") };
    const t0 = clock.now;
    const host = async () => {
      const store = await EtcdRegistrationStore.open({
        client: await client(etcd),
        ownsClient: true,
        prefix,
        plan: DEFAULT_PLAN,
        timeoutMs: TIMEOUT_MS,
        now: () => clock.now,
      });
      cleanups.push(() => store.close());
      const h = await harness({ service: { store, now: () => clock.now } });
      cleanups.push(() => h.cleanup());
      return { h, store };
    };
    const [{ h: ha }, { h: hb, store: sb }] = [await host(), await host()];
    await ha.service.register(ha.peer(ha.cert(I1)), { client_public_key: wgKey(1) });
    await ha.service.register(ha.peer(ha.cert(I2)), { client_public_key: wgKey(2) });
    // Only gw2 has a tunnel to I1 that still hands shakes; nobody saw I2.
    await b.report(new Map([[I1, t0 + 9 * HOUR]]));
    const at = t0 + 11 * HOUR;
    expect(await recycleOnce(a, ha.service, at)).toEqual([I2]);
    // gw1 holds the recycler key: gw2 does nothing, whatever it sees.
    expect(await recycleOnce(b, hb.service, t0 + 30 * HOUR)).toEqual([]);
    await until("gw2 to follow the removal", () => sb.get(I2) === undefined, 3000);
    // gw1 leaves: gw2 takes over, and I1's handshake is now too old everywhere.
    await a.close();
    expect(await recycleOnce(b, hb.service, t0 + 20 * HOUR)).toEqual([I1]);
  }, 20_000);
});
