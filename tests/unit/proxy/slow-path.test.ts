/**
 * The slow path's pieces: the PROXY v2 header reader and the Unix socket it listens on.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodeProxyV2 } from "../../../gateway-runtime/proxy/proxy-protocol.js";
import {
  listenOnPath,
  proxyHeaderStatus,
  readProxyHeader,
} from "../../../gateway-runtime/proxy/slow-path.js";

const dir = mkdtempSync(join(tmpdir(), "slow-path-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const header = encodeProxyV2({
  sourceAddress: "192.0.2.1",
  sourcePort: 5000,
  destAddress: "192.0.2.2",
  destPort: 443,
});

/** A server on a fresh socket path answering each connection with `name`. */
async function named(path: string, name: string): Promise<Server> {
  const server = createServer((s) => s.end(name));
  await listenOnPath(server, path);
  return server;
}

function ask(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const s = connect({ path });
    s.on("data", (d: Buffer) => (text += d.toString()));
    s.once("error", reject);
    s.once("close", () => resolve(text));
  });
}

const close = (server: Server) => new Promise((r) => server.close(r));

describe("proxyHeaderStatus", () => {
  it("waits for more while the bytes may still become a header", () => {
    expect(proxyHeaderStatus(Buffer.alloc(0))).toBe("more");
    expect(proxyHeaderStatus(header.subarray(0, 5))).toBe("more");
    expect(proxyHeaderStatus(header.subarray(0, 16))).toBe("more");
    expect(proxyHeaderStatus(header.subarray(0, header.length - 1))).toBe("more");
  });

  it("says bad at the first byte off the signature, and for what it cannot carry", () => {
    expect(proxyHeaderStatus(Buffer.from([0x16]))).toBe("bad");
    expect(proxyHeaderStatus(Buffer.from("PROXY TCP4 "))).toBe("bad");
    const udp = Buffer.from(header);
    udp[13] = 0x12;
    expect(proxyHeaderStatus(udp)).toBe("bad");
  });

  it("decodes a whole header, with the bytes after it left out of it", () => {
    const status = proxyHeaderStatus(Buffer.concat([header, Buffer.from("rest")]));
    expect(status).toMatchObject({ sourceAddress: "192.0.2.1", headerLength: header.length });
  });
});

describe("readProxyHeader", () => {
  it("puts the bytes after the header back for the next reader", async () => {
    const path = join(dir, "read.sock");
    const got = new Promise<[string, string]>((resolve) => {
      const server = createServer({ pauseOnConnect: true }, async (s: Socket) => {
        const h = await readProxyHeader(s, 1_000);
        s.once("data", (d: Buffer) => {
          resolve([h.sourceAddress, d.toString()]);
          s.destroy();
          server.close();
        });
        s.resume();
      });
      void listenOnPath(server, path).then(() => {
        const c = connect({ path }, () => c.end(Buffer.concat([header, Buffer.from("hello")])));
        c.on("error", () => {});
      });
    });
    expect(await got).toEqual(["192.0.2.1", "hello"]);
  });
});

describe("listenOnPath", () => {
  it("listens owner only, replacing a socket left there", async () => {
    const path = join(dir, "owner.sock");
    const first = await named(path, "first");
    const second = await named(path, "second");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await ask(path)).toBe("second");
    await close(first);
    await close(second);
  });

  it("a replaced generation closing leaves the new socket in place (a hand-over)", async () => {
    const path = join(dir, "handover.sock");
    const old = await named(path, "old");
    const current = await named(path, "new");
    await close(old);
    expect(statSync(path).isSocket()).toBe(true);
    expect(await ask(path)).toBe("new");
    await close(current);
  });

  it("refuses a path that holds another kind of file", async () => {
    const path = join(dir, "file");
    writeFileSync(path, "x");
    await expect(listenOnPath(createServer(), path)).rejects.toMatchObject({
      code: "E_SLOW_PATH_SOCKET",
    });
  });
});
