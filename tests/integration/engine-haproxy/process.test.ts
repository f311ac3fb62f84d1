/**
 * HAProxy's process across the runtime's life: a new runtime generation adopts the running
 * HAProxy (same master, no reload when the structure is the same, a seamless reload when it is
 * not, open streams kept either way), and a HAProxy that dies is started again from the files.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

describe("HAProxy engine: adoption and restarts", () => {
  let lab: Lab;
  const backends: Backend[] = [];
  const ip1 = loopbackIp();
  const ip2 = loopbackIp();

  beforeAll(async () => {
    lab = await startLab();
    backends.push(await backend("one", ip1, 80), await backend("two", ip2, 80));
    await lab.add("01", APP, ip1);
  });

  afterAll(async () => {
    await lab?.close();
    for (const b of backends) await b.close();
  });

  it("adopts the running HAProxy in the next generation, without a reload", async () => {
    const held = await stream(lab, at(APP));
    await held.ping("1");
    const pids = await lab.pids();
    await lab.nextGeneration();
    expect(lab.engine.process.adopted).toBe(true);
    expect(await lab.pids()).toBe(pids);
    // Changes made while no generation ran (here: before the new one started) are applied.
    lab.directory.upsert({ id: "02", appId: "b2b2b2", ip: ip2, lastHandshakeMs: Date.now() });
    await lab.settle();
    expect((await request(lab, at("b2b2b2"))).text).toBe("two 80 pp=- ping");
    expect(await held.ping("2")).toBe("one 80 pp=- 2");
    held.close();
  });

  it("reloads an adopted HAProxy whose configuration structure changed, keeping streams", async () => {
    const held = await stream(lab, at(APP));
    await held.ping("1");
    const before = await lab.engine.process.procs();
    await lab.nextGeneration({ "core.proxy.max_connections_per_ip": 50 });
    const after = await lab.engine.process.procs();
    expect(after.master).toBe(before.master);
    expect(after.workers).not.toEqual(before.workers);
    expect((await request(lab, at(APP))).text).toBe("one 80 pp=- ping");
    expect((await request(lab, at("b2b2b2"))).text).toBe("two 80 pp=- ping");
    expect(await held.ping("2")).toBe("one 80 pp=- 2");
    held.close();
  });

  it("starts HAProxy again when it dies, with the servers it had", async () => {
    const { master } = await lab.engine.process.procs();
    process.kill(master, "SIGKILL");
    await until("a new master", () => lab.engine.process.pid !== master, 15_000);
    await until(
      "the new HAProxy serving",
      async () => (await request(lab, at("b2b2b2"))).text === "two 80 pp=- ping",
      10_000,
    );
    expect((await lab.engine.process.procs()).master).toBe(lab.engine.process.pid);
    expect((await request(lab, at(APP))).text).toBe("one 80 pp=- ping");
  });
});
