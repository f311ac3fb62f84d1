/**
 * The per-client-IP and per-app limits (stick tables), `connect_top_n` as retries with
 * redispatch, and `ip_hash` as a consistent source hash, through the real HAProxy.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
const LIMITED = "b2b2b2";
const at = (label: string) => `${label}.${TEST_DOMAIN}`;

describe("HAProxy engine: limits and balance", () => {
  let lab: Lab;
  const backends: Backend[] = [];
  const ip1 = loopbackIp();
  const ip2 = loopbackIp();
  const ip3 = loopbackIp();
  /** An instance nothing listens on: its connects are refused. */
  const dead = loopbackIp();

  beforeAll(async () => {
    lab = await startLab({
      "core.proxy.balance": "ip_hash",
      "core.proxy.max_connections_per_ip": 3,
      "core.proxy.app_overrides": { [LIMITED]: { max_connections: 1 } },
    });
    backends.push(
      await backend("one", ip1, 80),
      await backend("two", ip2, 80),
      await backend("three", ip3, 80),
    );
    await lab.add("01", APP, ip1);
    await lab.add("02", APP, ip2);
    await lab.add("03", LIMITED, ip3);
  });

  afterAll(async () => {
    await lab?.close();
    for (const b of backends) await b.close();
  });

  it("refuses a client address over max_connections_per_ip, not another address", async () => {
    const client = loopbackIp();
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await stream(lab, at(APP), client));
    await expect(request(lab, at(APP), { localAddress: client })).rejects.toThrow();
    expect((await request(lab, at(APP), { localAddress: loopbackIp() })).text).toMatch(/ ping$/);
    for (const s of held) s.close();
  });

  it("refuses an app over its max_connections, not another app", async () => {
    const held = await stream(lab, at(LIMITED), loopbackIp());
    expect(await held.ping("x")).toBe("three 80 pp=- x");
    await expect(request(lab, at(LIMITED), { localAddress: loopbackIp() })).rejects.toThrow();
    expect((await request(lab, at(APP))).text).toMatch(/ ping$/);
    held.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await request(lab, at(LIMITED))).text).toBe("three 80 pp=- ping");
  });

  it("keeps a client address on one instance (ip_hash)", async () => {
    for (let c = 0; c < 4; c++) {
      const client = loopbackIp();
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) {
        seen.add(
          (await request(lab, at(APP), { localAddress: client })).text.split(" ")[0] as string,
        );
      }
      expect(seen.size, client).toBe(1);
    }
  });

  it("redispatches a refused connect to another instance (connect_top_n)", async () => {
    await lab.add("0d", APP, dead);
    for (let c = 0; c < 8; c++) {
      const answer = await request(lab, at(APP), { localAddress: loopbackIp() });
      expect(answer.text).toMatch(/^(one|two) 80 pp=- ping$/);
    }
    await lab.remove("0d");
  });
});
