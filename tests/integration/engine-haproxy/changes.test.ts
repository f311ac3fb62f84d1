/**
 * Changes the HAProxy engine takes while it serves: health, registrations and removals through
 * the runtime API (no reload: the master's and the worker's pids stay), long-lived streams
 * through other instances left alone, a certificate swap without a reload, and a slot pool that
 * runs out (a seamless reload that keeps open streams).
 */
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueLeaf } from "../../../testkit/certs.js";
import { until } from "../../../testkit/poll.js";
import {
  type Backend,
  backend,
  type Lab,
  loopbackIp,
  request,
  startLab,
  stream,
  TEST_DOMAIN,
} from "./harness.js";

const APP = "a1a1a1";
const at = (label: string) => `${label}.${TEST_DOMAIN}`;

describe("HAProxy engine: changes without a reload", () => {
  let lab: Lab;
  const backends: Backend[] = [];
  const ip1 = loopbackIp();
  const ip2 = loopbackIp();

  beforeAll(async () => {
    // round_robin: both instances take new connections in turn while both are ready.
    lab = await startLab({ "core.proxy.balance": "round_robin" }, { slots: 2 });
    backends.push(await backend("one", ip1, 80), await backend("two", ip2, 80));
    await lab.add("01", APP, ip1);
    await lab.add("02", APP, ip2);
  });

  afterAll(async () => {
    await lab?.close();
    for (const b of backends) await b.close();
  });

  async function answers(n: number): Promise<Set<string>> {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++)
      seen.add((await request(lab, at(APP))).text.split(" ")[0] as string);
    return seen;
  }

  it("sends an app's traffic to its ready instances only", async () => {
    expect(await answers(6)).toEqual(new Set(["one", "two"]));
    // Instance 02's WireGuard handshake ages out: its server goes to maintenance.
    lab.directory.setHandshake("02", 1);
    await lab.settle();
    expect(await answers(6)).toEqual(new Set(["one"]));
    lab.directory.setHandshake("02", Date.now());
    await lab.settle();
    expect(await answers(6)).toEqual(new Set(["one", "two"]));
  });

  it("takes an instance out of rotation but still reaches it by its id", async () => {
    const instance = lab.directory.instance("02");
    if (!instance) throw new Error("no instance 02");
    lab.directory.upsert({ ...instance, outOfRotation: true });
    await lab.settle();
    expect(await answers(6)).toEqual(new Set(["one"]));
    expect((await request(lab, at("02"))).text).toBe("two 80 pp=- ping");
    lab.directory.upsert({ ...instance, outOfRotation: false });
    await lab.settle();
  });

  it("adds and removes registrations without a reload or a cut stream", async () => {
    const pids = await lab.pids();
    const held = await stream(lab, at("01"));
    expect(await held.ping("a")).toBe("one 80 pp=- a");
    const ip3 = loopbackIp();
    backends.push(await backend("three", ip3, 80));
    await lab.add("03", APP, ip3);
    await until("instance 03 to answer", async () => (await answers(3)).has("three"), 5_000);
    await lab.remove("03");
    expect(await answers(6)).toEqual(new Set(["one", "two"]));
    // A whole new app and its removal.
    await lab.add("0b", "b2b2b2", ip3);
    expect((await request(lab, at("b2b2b2"))).text).toBe("three 80 pp=- ping");
    await lab.remove("0b");
    await until(
      "b2b2b2 to leave HAProxy",
      async () => !(await lab.engine.api.run(`show map ${lab.dir}/apps.map`)).includes("b2b2b2"),
      5_000,
    );
    expect(await held.ping("b")).toBe("one 80 pp=- b");
    expect(held.closed).toBe(false);
    expect(await lab.pids()).toBe(pids);
    held.close();
  });

  it("lets a removed instance's open stream run, then deletes its server", async () => {
    // Through the app's slot (an instance id goes through be_direct): 01 sick for a moment.
    lab.directory.setHandshake("01", 1);
    await lab.settle();
    const held = await stream(lab, at(APP));
    expect(await held.ping("x")).toBe("two 80 pp=- x");
    lab.directory.setHandshake("01", Date.now());
    await lab.settle();
    await lab.remove("02");
    expect(await answers(4)).toEqual(new Set(["one"]));
    expect(await held.ping("y")).toBe("two 80 pp=- y");
    const state = () => lab.engine.api.run("show servers state");
    expect(await state()).toContain("i_02");
    held.close();
    await until("i_02 to be deleted", async () => !(await state()).includes("i_02"), 5_000);
    await lab.add("02", APP, ip2);
  });

  it("swaps the certificate: the next connection gets the new serial, an open stream keeps going", async () => {
    const held = await stream(lab, at(APP));
    await held.ping("before");
    const old = (await request(lab, at(APP))).serial;
    const next = issueLeaf(lab.ca);
    writeFileSync(lab.config.core.proxy.cert_chain, next.certPem);
    writeFileSync(lab.config.core.proxy.cert_key, next.keyPem);
    const pids = await lab.pids();
    await lab.engine.reloadCertificate();
    const now = (await request(lab, at(APP))).serial;
    expect(now).toBe(next.serial);
    expect(now).not.toBe(old);
    expect(await held.ping("after")).toMatch(/ after$/);
    expect(await lab.pids()).toBe(pids);
    held.close();
  });

  it("grows a full slot pool with a seamless reload that keeps open streams", async () => {
    const held = await stream(lab, at(APP));
    await held.ping("1");
    const master = (await lab.engine.process.procs()).master;
    const ipC = loopbackIp();
    const ipD = loopbackIp();
    backends.push(await backend("c", ipC, 80), await backend("d", ipD, 80));
    // Two slots: APP has one; the third app needs a third slot.
    await lab.add("0c", "c3c3c3", ipC);
    await lab.add("0d", "d4d4d4", ipD);
    expect(lab.engine.reconciler.poolSize).toBeGreaterThanOrEqual(3);
    expect((await request(lab, at("d4d4d4"))).text).toBe("d 80 pp=- ping");
    expect((await request(lab, at("c3c3c3"))).text).toBe("c 80 pp=- ping");
    expect((await lab.engine.process.procs()).master).toBe(master);
    expect(await held.ping("2")).toMatch(/ 2$/);
    held.close();
  });
});
