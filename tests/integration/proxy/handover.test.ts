/**
 * Hand-over on one host (issue #19), on both data plane engines: the bundle as `gateway run` on
 * sockets from a socket holder (handover-lab.ts). A steady connect loop and long-lived
 * connections run across a hand-over (old main SIGTERMed, as systemd's KillMode=process
 * restart does, new one started on the same fds) and a SIGKILL.
 *
 * What differs by design (README "Data plane engines"): with Node the leaving generation's
 * workers keep its connections and cut them at drain_timeout; with HAProxy the connections
 * are HAProxy's, which the next generation adopts, so they go on past drain_timeout, but one
 * on the slow path (the Node data plane behind HAProxy, in the leaving process) is cut.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FILES } from "../../../gateway-runtime/engine/haproxy/layout.js";
import { processesMatching } from "../../../testkit/netns.js";
import { until } from "../../../testkit/poll.js";
import { isAlive } from "../../../testkit/process.js";
import { BUNDLE } from "../../helpers/e2e-lab.js";
import { ENGINES, TEST_DOMAIN } from "./harness.js";
import {
  connectLoop,
  type HandoverLab,
  longLived,
  request,
  startHandoverLab,
} from "./handover-lab.js";

const DRAIN_S = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ADOPTED = /haproxy: adopted the running master/g;
/** A gateway's own name: HAProxy hands it to the Node slow path. */
const HEALTH = `health.${TEST_DOMAIN}`;

describe.each(ENGINES)("hand-over on one host, %s engine", (engine) => {
  let lab: HandoverLab;
  const adoptions = () => [...lab.log().matchAll(ADOPTED)].length;

  beforeAll(async () => {
    lab = await startHandoverLab(engine, DRAIN_S);
  }, 90_000);

  afterAll(async () => {
    await lab?.close();
  }, 30_000);

  it("refuses and cuts nothing, resumes old tickets, drains, and survives a SIGKILL of the main", async () => {
    // The lab started the first generation (the app registers with it).
    const first = lab.mainPid();
    const wgGo = processesMatching(`wireguard-go -f ${lab.iface}`);
    expect(wgGo).toHaveLength(1);
    const master = lab.haproxyMaster();
    if (engine === "haproxy") {
      // HAProxy serves the holder's socket itself, handed on as its fd 3.
      const cfg = readFileSync(join(lab.dir, "state", "haproxy", FILES.config), "utf8");
      expect(cfg).toMatch(/^\s*bind fd@3$/m);
      expect(isAlive(master)).toBe(true);
    }
    const ticketConn = await lab.open();
    const ticket = await new Promise<Buffer>((resolve) => {
      ticketConn.once("session", resolve);
      // Only the ticket matters: the connection is destroyed once it arrives, which may be
      // before the answer (a rejected request then, not a failure).
      request(ticketConn).catch(() => {});
    });
    ticketConn.destroy();

    const long = Array.from({ length: 4 }, () => longLived(lab));
    const slow = longLived(lab, HEALTH);
    await Promise.all([...long, slow].map((l) => l.ready));
    const loop = connectLoop(lab, 200, ticket);
    await sleep(1_000);

    // (a) The hand-over, in systemd's order: the old main goes, then the new one starts.
    const handoverAt = Date.now();
    process.kill(first, "SIGTERM");
    await until("the old main to exit", () => !isAlive(first), 10_000);
    // Node: the health check is a worker's like any connection; HAProxy: the slow path's,
    // closed with the process that leaves.
    expect(slow.state.closedAt > 0).toBe(engine === "haproxy");
    const answersAtHandover = long.map((l) => l.state.answers);
    const second = await lab.startGeneration();
    await sleep(1_000);
    // The long-lived connections of the old generation kept answering across it.
    long.forEach((l, i) => {
      expect(l.state.answers).toBeGreaterThan((answersAtHandover[i] ?? 0) + 5);
      expect(l.state.closedAt).toBe(0);
    });
    // (f, in the gateway) the same wireguard-go serves on.
    expect(processesMatching(`wireguard-go -f ${lab.iface}`)).toEqual(wgGo);

    if (engine === "node") {
      // (b) The old workers cut the long-lived connections at drain_timeout, and say how many.
      await until(
        "the old workers to cut at drain_timeout",
        () => long.every((l) => l.state.closedAt > 0),
        15_000,
      );
      for (const l of [...long, slow]) {
        expect(l.state.closedAt - handoverAt).toBeGreaterThanOrEqual(DRAIN_S * 1000 - 500);
      }
      const cut = [...lab.log().matchAll(/"cut":(\d+).*drained: cut/g)].map((m) => Number(m[1]));
      expect(cut.reduce((a, b) => a + b, 0)).toBe(5);
    } else {
      // (b) The next generation adopted the same HAProxy: nothing drains, nothing is cut.
      expect(adoptions()).toBe(1);
      expect(lab.haproxyMaster()).toBe(master);
      await sleep(handoverAt + DRAIN_S * 1000 + 1_000 - Date.now());
      const past = long.map((l) => l.state.answers);
      await sleep(500);
      long.forEach((l, i) => {
        expect(l.state.closedAt).toBe(0);
        expect(l.state.answers).toBeGreaterThan(past[i] ?? 0);
      });
      expect(lab.log()).not.toMatch(/drained: cut/);
    }

    // (c) SIGKILL of the main: its connections live on; a new main serves new ones.
    const kept = longLived(lab);
    await kept.ready;
    process.kill(second, "SIGKILL");
    await sleep(500);
    const before = kept.state.answers;
    await sleep(500);
    expect(kept.state.answers).toBeGreaterThan(before);
    await lab.startGeneration();
    // Still up (on Node it is cut later, at the orphaned worker's drain_timeout).
    expect(kept.state.closedAt).toBe(0);
    expect(kept.state.errors).toBe(0);
    await sleep(1_000);
    loop.stop();
    await sleep(2_000);
    if (engine === "haproxy") expect(lab.haproxyMaster()).toBe(master);
    for (const l of long) (await l.ready).destroy();

    // (a) Not one new connection failed, across both; (d) the ticket from before resumed throughout.
    expect(loop.counts.failed).toBe(0);
    expect(loop.counts.ok).toBeGreaterThan(500);
    expect(loop.counts.reused).toBe(loop.counts.ok + loop.counts.failed);
  }, 90_000);

  it("the main process killed, no new generation yet: its workers go on accepting until the next generation is ready, then drain", async () => {
    // The generation the test above left running goes first, as in a restart.
    const previous = lab.mainPid();
    process.kill(previous, "SIGTERM");
    await until("the previous main to exit", () => !isAlive(previous), 10_000);
    const main = await lab.startGeneration();
    const adoptedBefore = adoptions();
    // Node: the main's proxy workers; HAProxy: the adopted HAProxy serves for no generation.
    const workers =
      engine === "node"
        ? processesMatching(`${BUNDLE} proxy-worker`).filter(
            (pid) =>
              readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[1] ===
              String(main),
          )
        : [lab.haproxyMaster()];
    expect(workers).toHaveLength(engine === "node" ? 2 : 1);
    expect(workers.every(isAlive)).toBe(true);
    process.kill(main, "SIGKILL");
    await until("the main to be gone", () => !isAlive(main), 5_000);
    // No one restarts it for now: the orphaned workers answer new connections at once.
    for (let i = 0; i < 10; i++) {
      const started = Date.now();
      const s = await lab.open();
      expect(await request(s)).toContain("200");
      s.destroy();
      expect(Date.now() - started).toBeLessThan(1000);
      await sleep(100);
    }
    expect(workers.every(isAlive)).toBe(true);
    await lab.startGeneration();
    if (engine === "node") {
      // The next generation's ready file is their cue to stop accepting and drain.
      await until("the orphaned workers to drain and exit", () => !workers.some(isAlive), 15_000);
      expect(lab.log()).toContain("serving on until the next generation is ready");
      expect(lab.log()).toContain("the next generation is ready: draining");
      return;
    }
    // The next generation adopts HAProxy instead: it goes on serving, for that generation.
    expect(adoptions()).toBe(adoptedBefore + 1);
    expect(lab.haproxyMaster()).toBe(workers[0]);
    await sleep(1_000);
    expect(workers.every(isAlive)).toBe(true);
    const s = await lab.open();
    expect(await request(s)).toContain("200");
    s.destroy();
  }, 60_000);

  // HAProxy only: the Node engine has no configuration structure to reload. Was the second
  // half of the former engine-haproxy/handover.test.ts, which had a stand-in for the runtime.
  if (engine === "haproxy")
    it("a next generation with another configuration reloads the adopted HAProxy, which keeps the handed-over socket", async () => {
      const master = lab.haproxyMaster();
      const oldWorkers = lab.haproxyPids().filter((pid) => pid !== master);
      expect(oldWorkers.length).toBeGreaterThan(0);
      const held = longLived(lab);
      await held.ready;
      const loop = connectLoop(lab, 100, undefined);
      await sleep(500);
      // `timeout connect` is rendered from it: the adopting generation's file differs.
      lab.reconfigure({ timeouts: { cache_top_n: "1s", connect: "3s" } });
      const previous = lab.mainPid();
      process.kill(previous, "SIGTERM");
      await until("the previous main to exit", () => !isAlive(previous), 10_000);
      await lab.startGeneration();
      const reloadedAt = Date.now();
      expect(lab.log()).toContain("adopted with another configuration structure; reloading");
      expect(lab.haproxyMaster()).toBe(master);
      const now = lab.haproxyPids().filter((pid) => pid !== master && !oldWorkers.includes(pid));
      expect(now.length).toBeGreaterThan(0);
      await sleep(1_000);
      loop.stop();
      await sleep(1_500);
      // The new worker took the listener over (expose-fd listeners): nothing refused.
      expect(loop.counts.failed).toBe(0);
      expect(loop.counts.ok).toBeGreaterThan(150);
      // The old worker keeps its connections until hard-stop-after (drain_timeout).
      expect(held.state.closedAt).toBe(0);
      await until("the old worker's hard stop", () => held.state.closedAt > 0, 15_000);
      expect(held.state.closedAt - reloadedAt).toBeGreaterThanOrEqual(DRAIN_S * 1000 - 1_500);
      expect(held.state.errors).toBe(0);
    }, 60_000);
});
