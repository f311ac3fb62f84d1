// The bridge with the backend read into reused buffers (passthrough's `reuseReads`): the bytes
// must come out exact even when the client is slow and writes queue up, which is when a reused
// buffer would be overwritten under a pending write.
import type { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { bridge } from "../../../gateway-runtime/proxy/bridge.js";
import { pooledReadBuffers } from "../../../gateway-runtime/proxy/read-buffers.js";
import {
  assertEchoesExact,
  collect,
  destroyPeers,
  type Link,
  LONG,
  settled,
  useLoopback,
  within,
} from "./bridge-harness.js";

const loop = useLoopback();
const reuse = { reuseReads: true };

/** The bridge over a link made with `reuse`, consuming its backend's reads. */
function start(link: Link) {
  if (!link.reads) throw new Error("link made without reuseReads");
  return bridge(link.gwClient, link.gwBackend, LONG, { backendReads: link.reads });
}

describe("bridge: backend read into reused buffers", () => {
  it("carries random payloads byte-exact both ways and ends closed", async () => {
    await assertEchoesExact(() => loop.link(reuse), start, 6);
  });

  // Small writes matter most: a write that queues below the client's high-water mark does not
  // pause the backend, so the next read would land on bytes still waiting to be written.
  it.each([
    [64 * 1024, 50],
    [1500, 8],
  ])(
    "keeps %i-byte writes, %i MB, to a slow client exact and bounded",
    async (size, megabytes) => {
      const link = await loop.link(reuse);
      const done = start(link);
      let maxWritable = 0;
      let drains = 0;
      const sampler = setInterval(() => {
        maxWritable = Math.max(maxWritable, link.gwClient.writableLength);
      }, 1);
      link.gwClient.on("drain", () => drains++);
      const total = megabytes * 1024 * 1024;
      const sent = createHash("sha256");
      const got = createHash("sha256");
      let received = 0;
      let nextPause = 1024 * 1024;
      link.client.on("data", (chunk: Buffer) => {
        got.update(chunk);
        received += chunk.length;
        if (received >= nextPause) {
          nextPause += 1024 * 1024;
          link.client.pause();
          setTimeout(() => link.client.resume(), 10);
        }
      });
      const clientDone = once(link.client, "end");
      const random = randomBytes(total); // every byte differs from the ones before: a stale buffer shows
      for (let n = 0; n < total; n += size) {
        const chunk = random.subarray(n, Math.min(total, n + size));
        sent.update(chunk);
        if (!link.backend.write(chunk)) await within(once(link.backend, "drain"), 5000, "drain");
      }
      link.backend.end();
      await within(clientDone, 10_000, "the client sees the end");
      link.client.end();
      clearInterval(sampler);
      expect(await settled(link, done)).toEqual({
        end: "closed",
        bytesToBackend: 0,
        bytesToClient: total,
      });
      expect(received).toBe(total);
      expect(got.digest("hex")).toBe(sent.digest("hex"));
      expect(drains).toBeGreaterThan(0); // writes really queued, so reads had to move buffers
      expect(maxWritable).toBeLessThan(256 * 1024);
      destroyPeers(link);
    },
    30_000,
  );

  it("lends large buffers back to the pool when a download ends", async () => {
    const link = await loop.link(reuse);
    const done = start(link);
    const got = collect(link.client);
    const before = pooledReadBuffers();
    link.backend.end(randomBytes(4 * 1024 * 1024));
    link.client.end();
    expect((await within(got, 5000, "download")).length).toBe(4 * 1024 * 1024);
    await settled(link, done);
    // the large buffer was borrowed for the download and given back, not lost
    expect(pooledReadBuffers()).toBeGreaterThanOrEqual(Math.max(before, 1));
    destroyPeers(link);
  });

  it("never reuses a buffer whose bytes are still queued for the client", async () => {
    const link = await loop.link(reuse);
    link.gwClient.cork(); // every write now queues in the writable, below its high-water mark
    const done = start(link);
    const got = collect(link.client);
    for (const part of ["aaaa", "bbbb", "cccc"]) {
      link.backend.write(part);
      await sleep(30); // one read per part, each into the same small buffer unless retained
    }
    expect(link.gwClient.writableLength).toBe(12);
    link.gwClient.uncork();
    link.backend.end();
    link.client.end();
    expect((await within(got, 3000, "client reads")).toString()).toBe("aaaabbbbcccc");
    await settled(link, done);
    destroyPeers(link);
  });

  it("delivers what the backend sent before the bridge took over, first", async () => {
    const link = await loop.link(reuse);
    link.backend.write("banner\n"); // a server-first protocol (SSH, SMTP) speaks at once
    await sleep(50);
    const done = start(link);
    const got = collect(link.client);
    link.backend.end("bye\n");
    link.client.end();
    expect((await within(got, 3000, "client reads")).toString()).toBe("banner\nbye\n");
    expect(await settled(link, done)).toMatchObject({ end: "closed", bytesToClient: 11 });
    destroyPeers(link);
  });
});
