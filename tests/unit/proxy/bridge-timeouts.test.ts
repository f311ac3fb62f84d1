// The bridge over real sockets on 127.0.0.1 (see bridge.test.ts for the set-up): its timers.
import { Buffer } from "node:buffer";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import {
  type BridgeResult,
  type BridgeTimeouts,
  bridge,
} from "../../../gateway-runtime/proxy/bridge.js";

import {
  timeouts,
  type Link,
  useLoopback,
  within,
  collect,
  peerGone,
  flood,
  trickle,
  destroyPeers,
  settled,
} from "./bridge-harness.js";
const loop = useLoopback();

describe("bridge: timeouts", () => {
  /** Runs a bridge and reports how it ended and after how long. */
  async function timed(
    link: Link,
    limits: Partial<BridgeTimeouts>,
  ): Promise<{ result: BridgeResult; elapsed: number }> {
    const started = performance.now();
    const result = await settled(link, bridge(link.gwClient, link.gwBackend, timeouts(limits)));
    return { result, elapsed: performance.now() - started };
  }

  it("ends idle when no byte moves", async () => {
    const link = await loop.link();
    const { result, elapsed } = await timed(link, { idleMs: 150 });
    expect(result).toEqual({ end: "idle", bytesToBackend: 0, bytesToClient: 0 });
    expect(elapsed).toBeGreaterThanOrEqual(148);
    expect(elapsed).toBeLessThan(3000);
    await within(peerGone(link.client), 2000, "client sees the close");
    await within(peerGone(link.backend), 2000, "backend sees the close");
    destroyPeers(link);
  });

  it("counts traffic as activity and ends idle once it stops", async () => {
    const link = await loop.link();
    link.backend.resume();
    const started = performance.now();
    // 40 ms between bytes against a 1 s idle timer: a stall of the test process under 0.9 s
    // does not end the bridge early.
    const done = bridge(link.gwClient, link.gwBackend, timeouts({ idleMs: 1000 }));
    for (let i = 0; i < 10; i++) {
      link.client.write("x");
      await sleep(40);
    }
    const result = await settled(link, done);
    const elapsed = performance.now() - started;
    expect(result).toEqual({ end: "idle", bytesToBackend: 10, bytesToClient: 0 });
    expect(elapsed).toBeGreaterThanOrEqual(9 * 40 + 998); // from the last byte on
    expect(elapsed).toBeLessThan(4000);
    destroyPeers(link);
  });

  it("ends on a write that stays blocked", async () => {
    const link = await loop.link();
    link.client.pause(); // never reads
    flood(link.backend, Buffer.alloc(256 * 1024, 1));
    const { result, elapsed } = await timed(link, { writeMs: 200 });
    expect(result.end).toBe("write");
    expect(result.bytesToClient).toBeGreaterThan(0);
    expect(elapsed).toBeGreaterThanOrEqual(198);
    expect(elapsed).toBeLessThan(4000);
    destroyPeers(link);
  });

  it("bounds the half-closed phase", async () => {
    const link = await loop.link();
    const atBackend = collect(link.backend);
    link.client.end("bye");
    const { result, elapsed } = await timed(link, { shutdownMs: 200 });
    expect(result).toEqual({ end: "shutdown", bytesToBackend: 3, bytesToClient: 0 });
    expect((await within(atBackend, 1000, "FIN passed on")).toString()).toBe("bye");
    expect(elapsed).toBeGreaterThanOrEqual(198);
    expect(elapsed).toBeLessThan(3000);
    destroyPeers(link);
  });

  it("caps the total life of a busy connection", async () => {
    const link = await loop.link();
    link.backend.resume();
    trickle(link.client, 30);
    const { result, elapsed } = await timed(link, { totalMs: 300 });
    expect(result.end).toBe("total");
    expect(result.bytesToBackend).toBeGreaterThanOrEqual(5);
    expect(elapsed).toBeGreaterThanOrEqual(298);
    expect(elapsed).toBeLessThan(3000);
    destroyPeers(link);
  });

  it("turns idle and write off when data timeouts are disabled", async () => {
    const link = await loop.link();
    link.client.pause();
    flood(link.backend, Buffer.alloc(256 * 1024, 2));
    const { result, elapsed } = await timed(link, {
      idleMs: 50,
      writeMs: 50,
      totalMs: 400,
      dataTimeouts: false,
    });
    expect(result.end).toBe("total");
    expect(elapsed).toBeGreaterThanOrEqual(398);
    expect(elapsed).toBeLessThan(1500);
    destroyPeers(link);
  });
});
