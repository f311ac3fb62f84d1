// The bridge over real sockets on 127.0.0.1: a test client, the gateway's two sockets, a test
// backend. Gateway-side sockets keep Node's default allowHalfOpen (false), as a gateway's
// listener and backend connects would; the test peers are half-open so they can answer late.
import { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import type { Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BridgeResult, bridge } from "../../../gateway-runtime/proxy/bridge.js";

import {
  assertEchoesExact,
  LONG,
  type Link,
  Loopback,
  useLoopback,
  within,
  until,
  collect,
  peerGone,
  flood,
  destroyPeers,
  settled,
} from "./bridge-harness.js";
const loop = useLoopback();
const EVENTS = ["error", "close", "data", "end", "finish", "drain"] as const;

describe("bridge: bytes", () => {
  it("carries random payloads byte-exact both ways and ends closed", async () => {
    await assertEchoesExact(
      () => loop.link(),
      (l) => bridge(l.gwClient, l.gwBackend, LONG),
      8,
    );
  });

  it("holds no closure per connection: two bridges share every listener they add", async () => {
    const [one, two] = [await loop.link(), await loop.link()];
    const before = (s: Socket) => new Map(EVENTS.map((e) => [e, new Set(s.listeners(e))] as const));
    const sockets = [one.gwClient, one.gwBackend, two.gwClient, two.gwBackend];
    const had = sockets.map(before);
    const done = [
      bridge(one.gwClient, one.gwBackend, LONG),
      bridge(two.gwClient, two.gwBackend, LONG),
    ];
    const added = sockets.map((s, k) =>
      EVENTS.flatMap((e) => s.listeners(e).filter((f) => !had[k]?.get(e)?.has(f))),
    );
    expect(added[0]?.length).toBeGreaterThanOrEqual(5); // error, close, data, end, finish
    expect(added[2]).toEqual(added[0]); // the same functions, not copies
    expect(added[3]).toEqual(added[1]);
    for (const l of [one, two]) {
      l.client.end();
      l.backend.end();
    }
    for (const [k, l] of [one, two].entries()) await settled(l, done[k] as Promise<BridgeResult>);
  });

  it("sends initial bytes before the client's own, even ones already buffered", async () => {
    const link = await loop.link();
    const atBackend = collect(link.backend);
    link.client.write("client-bytes");
    await until(() => link.gwClient.readableLength > 0, 2000, "bytes buffered at the gateway");
    const done = bridge(link.gwClient, link.gwBackend, LONG, {
      initial: Buffer.from("PROXY-HEADER|"),
    });
    link.client.end("|more");
    expect((await within(atBackend, 2000, "backend reads")).toString()).toBe(
      "PROXY-HEADER|client-bytes|more",
    );
    link.backend.end();
    expect(await settled(link, done)).toEqual({
      end: "closed",
      bytesToBackend: 30,
      bytesToClient: 0,
    });
    destroyPeers(link);
  });

  it.each(["client", "backend"] as const)(
    "keeps buffering bounded while 50 MB flow to a slow %s",
    async (slow) => {
      const link = await loop.link();
      const [writer, reader, gwSrc, gwDst] =
        slow === "client"
          ? [link.backend, link.client, link.gwBackend, link.gwClient]
          : [link.client, link.backend, link.gwClient, link.gwBackend];
      const done = bridge(link.gwClient, link.gwBackend, LONG);
      let maxWritable = 0;
      let maxReadable = 0;
      let drains = 0;
      // runs right after the bridge's own 'data' listener wrote the chunk
      gwSrc.on("data", () => {
        maxWritable = Math.max(maxWritable, gwDst.writableLength);
        maxReadable = Math.max(maxReadable, gwSrc.readableLength);
      });
      gwDst.on("drain", () => {
        drains += 1;
      });
      const total = 50 * 1024 * 1024;
      const sent = createHash("sha256");
      const got = createHash("sha256");
      let received = 0;
      let nextPause = 1024 * 1024;
      reader.on("data", (chunk: Buffer) => {
        got.update(chunk);
        received += chunk.length;
        if (received >= nextPause) {
          nextPause += 1024 * 1024;
          reader.pause();
          setTimeout(() => reader.resume(), 10);
        }
      });
      const readerDone = once(reader, "end");
      const chunk = randomBytes(64 * 1024);
      for (let n = 0; n < total; n += chunk.length) {
        sent.update(chunk);
        if (!writer.write(chunk)) await within(once(writer, "drain"), 5000, "writer drain");
      }
      writer.end();
      await within(readerDone, 8000, "reader sees the end");
      reader.end();
      const result = await settled(link, done);
      expect(result).toEqual({
        end: "closed",
        bytesToBackend: slow === "backend" ? total : 0,
        bytesToClient: slow === "client" ? total : 0,
      });
      expect(received).toBe(total);
      expect(got.digest("hex")).toBe(sent.digest("hex"));
      expect(drains).toBeGreaterThan(0); // the slow side really pushed back
      expect(maxWritable).toBeLessThan(256 * 1024);
      expect(maxReadable).toBeLessThan(256 * 1024);
      destroyPeers(link);
    },
  );
});

describe("bridge: half-close", () => {
  it.each(["client", "backend"] as const)(
    "%s ends first: the other side still answers, then both close",
    async (first) => {
      const link = await loop.link();
      const [a, b] = first === "client" ? [link.client, link.backend] : [link.backend, link.client];
      const done = bridge(link.gwClient, link.gwBackend, LONG);
      const atA = collect(a);
      const atB = collect(b);
      a.end("request");
      expect((await within(atB, 2000, "request and FIN")).toString()).toBe("request");
      await sleep(50); // answer well after the FIN arrived
      b.write("reply-1 ");
      await sleep(20);
      b.end("reply-2");
      expect((await within(atA, 2000, "reply")).toString()).toBe("reply-1 reply-2");
      expect(await settled(link, done)).toEqual({
        end: "closed",
        bytesToBackend: first === "client" ? 7 : 15,
        bytesToClient: first === "client" ? 15 : 7,
      });
      destroyPeers(link);
    },
  );
});

describe("bridge: abrupt ends", () => {
  async function exchanged(
    options: { signal?: AbortSignal } = {},
  ): Promise<{ link: Link; done: Promise<BridgeResult> }> {
    const link = await loop.link();
    const done = bridge(link.gwClient, link.gwBackend, LONG, options);
    link.client.write("c");
    link.backend.write("b");
    await within(Promise.all([once(link.backend, "data"), once(link.client, "data")]), 2000, "hi");
    return { link, done };
  }

  it.each(["client", "backend"] as const)(
    "an RST from the %s settles the bridge and closes the other side",
    async (side) => {
      const { link, done } = await exchanged();
      const [reset, other] =
        side === "client" ? [link.client, link.backend] : [link.backend, link.client];
      reset.resetAndDestroy();
      const result = await settled(link, done);
      expect(result).toMatchObject({ end: `${side}-error`, bytesToBackend: 1, bytesToClient: 1 });
      expect((result.error as NodeJS.ErrnoException | undefined)?.code).toBe("ECONNRESET");
      await within(peerGone(other), 2000, "other side sees the close");
      destroyPeers(link);
    },
  );

  it.each(["gwClient", "gwBackend"] as const)(
    "a gateway socket destroyed from outside (%s) settles the bridge",
    async (which) => {
      const { link, done } = await exchanged();
      link[which].destroy();
      expect(await settled(link, done)).toEqual({
        end: which === "gwClient" ? "client-error" : "backend-error",
        bytesToBackend: 1,
        bytesToClient: 1,
      });
      await within(peerGone(which === "gwClient" ? link.backend : link.client), 2000, "close");
      destroyPeers(link);
    },
  );

  it("a backend that goes away while the client is paused by backpressure frees both", async () => {
    // pipe()'s leak: a paused client's own close was never read
    const link = await loop.link();
    link.backend.pause(); // never reads
    const done = bridge(link.gwClient, link.gwBackend, LONG);
    flood(link.client, Buffer.alloc(256 * 1024, 3));
    await until(() => link.gwClient.isPaused(), 3000, "bridge pauses the client");
    link.backend.destroy(); // unread data: the kernel answers with RST
    expect((await settled(link, done)).end).toBe("backend-error");
    await within(peerGone(link.client), 2000, "client sees the close");
    destroyPeers(link);
  });

  it("ends with aborted when the signal fires", async () => {
    const controller = new AbortController();
    const { link, done } = await exchanged({ signal: controller.signal });
    controller.abort();
    expect(await settled(link, done)).toEqual({
      end: "aborted",
      bytesToBackend: 1,
      bytesToClient: 1,
    });
    await within(peerGone(link.client), 2000, "client sees the close");
    await within(peerGone(link.backend), 2000, "backend sees the close");
    destroyPeers(link);
  });

  it("ends at once for a signal aborted before the start", async () => {
    const link = await loop.link();
    const done = bridge(link.gwClient, link.gwBackend, LONG, { signal: AbortSignal.abort() });
    expect(await settled(link, done, 100)).toEqual({
      end: "aborted",
      bytesToBackend: 0,
      bytesToClient: 0,
    });
    destroyPeers(link);
  });
});

describe("bridge: TLS client socket (after termination)", () => {
  let secure: Loopback;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "bridge-tls-"));
    const [key, cert] = [join(dir, "key.pem"), join(dir, "cert.pem")];
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
        ...["-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=bridge.test"],
        ...["-addext", "subjectAltName=DNS:bridge.test"],
      ],
      { stdio: "ignore" },
    );
    secure = await new Loopback({ key: readFileSync(key), cert: readFileSync(cert) }).start();
  });
  afterAll(async () => {
    await secure.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("echoes byte-exact through a half-close from the client", async () => {
    const link = await secure.link();
    expect(link.gwClient).toBeInstanceOf(tls.TLSSocket);
    const atBackend = collect(link.backend);
    const atClient = collect(link.client);
    const done = bridge(link.gwClient, link.gwBackend, LONG);
    const payload = randomBytes(300_000);
    link.client.end(payload);
    expect((await within(atBackend, 3000, "backend reads")).equals(payload)).toBe(true);
    await sleep(20); // reply after the client's close_notify and FIN arrived
    link.backend.end(payload.subarray(0, 1000));
    expect((await within(atClient, 3000, "client reads")).equals(payload.subarray(0, 1000))).toBe(
      true,
    );
    expect(await settled(link, done)).toEqual({
      end: "closed",
      bytesToBackend: 300_000,
      bytesToClient: 1000,
    });
    destroyPeers(link);
  });

  it("settles on a TCP reset under TLS", async () => {
    const link = await secure.link();
    const done = bridge(link.gwClient, link.gwBackend, LONG);
    link.client.write("x");
    await within(once(link.backend, "data"), 2000, "data");
    link.clientTcp.resetAndDestroy();
    expect((await settled(link, done)).end).toBe("client-error");
    await within(peerGone(link.backend), 2000, "backend sees the close");
    destroyPeers(link);
  });
});
