// The bridge over real sockets on 127.0.0.1 (see bridge.test.ts for the set-up): no descriptor
// outlives a connection, however it ends.
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { type BridgeEnd, bridge } from "../../../gateway-runtime/proxy/bridge.js";
import { openFdCount, waitForFds } from "../../helpers/fds.js";

import { LONG, useLoopback, within, until, flood, destroyPeers } from "./bridge-harness.js";
const loop = useLoopback();

describe("bridge: descriptors", () => {
  /** How a test connection ends; all end by events, none waits for a bridge timer. */
  const scenarios = [
    "clean",
    "client-rst",
    "backend-rst",
    "client-destroy",
    "backend-destroy-while-blocked",
  ] as const;
  type Scenario = (typeof scenarios)[number];

  async function run(scenario: Scenario): Promise<BridgeEnd> {
    const link = await loop.link();
    // peers behave like ordinary programs: answer a FIN with their own
    for (const peer of [link.client, link.backend]) peer.on("end", () => peer.end());
    const done = bridge(link.gwClient, link.gwBackend, LONG);
    if (scenario === "backend-destroy-while-blocked") {
      link.backend.pause();
      flood(link.client, Buffer.alloc(64 * 1024, 4));
      await until(() => link.gwClient.isPaused(), 3000, "blocked");
      link.backend.destroy();
    } else {
      link.client.write("ping");
      await within(once(link.backend, "data"), 2000, "ping");
      link.backend.write("pong");
      await within(once(link.client, "data"), 2000, "pong");
      if (scenario === "clean") link.client.end();
      else if (scenario === "client-rst") link.client.resetAndDestroy();
      else if (scenario === "backend-rst") link.backend.resetAndDestroy();
      else link.client.destroy();
    }
    const result = await within(done, 5000, `bridge settles (${scenario})`);
    destroyPeers(link);
    return result.end;
  }

  it("returns to the starting fd count after 1,000 bridged connections", async () => {
    const before = openFdCount();
    const ends = new Map<BridgeEnd, number>();
    for (let batch = 0; batch < 20; batch++) {
      const round = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          run(scenarios[(batch * 50 + i) % scenarios.length] ?? "clean"),
        ),
      );
      for (const end of round) ends.set(end, (ends.get(end) ?? 0) + 1);
    }
    const total = [...ends.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(1000);
    expect(
      [...ends.keys()].every((end) => ["closed", "client-error", "backend-error"].includes(end)),
    ).toBe(true);
    expect(ends.get("closed") ?? 0).toBeGreaterThanOrEqual(200);
    expect(ends.get("client-error") ?? 0).toBeGreaterThanOrEqual(200);
    expect(ends.get("backend-error") ?? 0).toBeGreaterThanOrEqual(400); // both backend scenarios
    expect(await waitForFds(before, 5, 3000)).toBeLessThanOrEqual(before + 5);
  });
});
