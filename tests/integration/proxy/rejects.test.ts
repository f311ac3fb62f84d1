import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFdCount, waitForFds } from "../../helpers/fds.js";
import {
  APP_A,
  type Backend,
  curl,
  ENGINES,
  httpBackend,
  type ProxyLab,
  startProxyLab,
  TEST_DOMAIN,
  tcpBackend,
} from "./harness.js";

describe.each(ENGINES)("on the %s engine", (engine) => {
  let lab: ProxyLab;
  let backend: Backend;

  beforeAll(async () => {
    lab = await startProxyLab({ "core.proxy.timeouts.handshake": "1s" }, { engine });
    await lab.addInstance("aa01", APP_A, "127.0.3.2");
    backend = await httpBackend("a-8080", "127.0.3.2", 8080);
  });

  afterAll(async () => {
    await backend.close();
    await lab?.close();
  });

  /** Sends raw bytes, then waits (bounded) for the proxy to close the connection; returns ms taken. */
  function sendAndWaitClose(bytes: Buffer | string, endAfter = false): Promise<number> {
    return new Promise((resolve, reject) => {
      const start = Date.now();
      const s: Socket = netConnect(lab.port, "127.0.0.1", () => {
        if (endAfter) s.end(bytes);
        else s.write(bytes);
      });
      s.on("data", () => {});
      s.on("error", () => {});
      const guard = setTimeout(() => {
        s.destroy();
        reject(new Error("proxy kept the connection open"));
      }, 5_000);
      s.once("close", () => {
        clearTimeout(guard);
        resolve(Date.now() - start);
      });
    });
  }

  const rejected = async (code: string) => (await lab.snapshot()).rejected[code] ?? 0;

  async function stillServes(): Promise<void> {
    const r = await curl(lab, `${APP_A}-8080.${TEST_DOMAIN}`, "/ok");
    expect(r.stdout).toMatch(/^a-8080 GET \/ok /);
  }

  describe("bad input is refused with a named reason, and the proxy keeps serving", () => {
    it.each([
      ["plain HTTP on the TLS port", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "E_HELLO_HTTP"],
      ["random bytes", Buffer.from([0x00, 0x01, 0x02, 0x03, 0x04, 0x05]), "E_HELLO_NOT_TLS"],
      ["an SSLv2 hello", Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02]), "E_HELLO_SSLV2"],
      [
        "a record longer than TLS allows",
        Buffer.from([0x16, 0x03, 0x01, 0x7f, 0xff, 0x01]),
        "E_HELLO_BAD_RECORD",
      ],
      [
        "a hello declaring more than 16 KiB",
        Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]),
        "E_HELLO_TOO_LARGE",
      ],
    ])("%s", async (_what, bytes, code) => {
      const before = await rejected(code);
      const ms = await sendAndWaitClose(bytes);
      expect(ms).toBeLessThan(1_000);
      expect(await rejected(code)).toBe(before + 1);
      await stillServes();
    });

    it("a truncated hello followed by EOF", async () => {
      const before = await rejected("E_HELLO_TRUNCATED");
      await sendAndWaitClose(Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00]), true);
      expect(await rejected("E_HELLO_TRUNCATED")).toBe(before + 1);
      await stillServes();
    });

    it("a client that stalls mid-hello is closed after the handshake timeout (1 s)", async () => {
      const before = await rejected("E_HELLO_TIMEOUT");
      const ms = await sendAndWaitClose(Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00]));
      expect(ms).toBeGreaterThanOrEqual(950);
      expect(ms).toBeLessThan(2_000);
      expect(await rejected("E_HELLO_TIMEOUT")).toBe(before + 1);
      await stillServes();
    });

    it("a hello without SNI", async () => {
      const before = await rejected("E_HELLO_NO_SNI");
      const s = tlsConnect({ port: lab.port, host: "127.0.0.1", rejectUnauthorized: false });
      s.on("error", () => {});
      await new Promise((r) => s.once("close", r));
      expect(await rejected("E_HELLO_NO_SNI")).toBe(before + 1);
    });

    it.each([
      [`${APP_A}gs.${TEST_DOMAIN}`, "E_ROUTE_BAD_SUFFIX"],
      [`zz-8080.${TEST_DOMAIN}`, "E_ROUTE_BAD_ID"],
      [`${APP_A}-99999.${TEST_DOMAIN}`, "E_ROUTE_BAD_PORT"],
      [`x.${APP_A}.${TEST_DOMAIN}`, "E_ROUTE_TOO_DEEP"],
      [`-8080.${TEST_DOMAIN}`, "E_ROUTE_EMPTY_ID"],
    ])("SNI %s is refused with %s", async (sni, code) => {
      const before = await rejected(code);
      const s = tlsConnect({
        port: lab.port,
        host: "127.0.0.1",
        servername: sni,
        ca: lab.ca.certPem,
      });
      let connected = false;
      s.once("secureConnect", () => (connected = true));
      s.on("error", () => {});
      await new Promise((r) => s.once("close", r));
      expect(connected).toBe(false);
      expect(await rejected(code)).toBe(before + 1);
    });

    it("an unknown app is closed within the handshake timeout and no backend is dialled", async () => {
      const before = backend.accepted;
      const [unknown, timedOut] = [
        await rejected("E_ROUTE_UNKNOWN_APP"),
        await rejected("E_HELLO_TIMEOUT"),
      ];
      const r = await curl(lab, `cafe00-8080.${TEST_DOMAIN}`);
      expect(r.code).not.toBe(0);
      // Closed for its route as soon as the hello was read, not held until the timeout.
      expect(await rejected("E_ROUTE_UNKNOWN_APP")).toBe(unknown + 1);
      expect(await rejected("E_HELLO_TIMEOUT")).toBe(timedOut);
      expect(backend.accepted).toBe(before);
      await stillServes();
    });
  });

  describe("descriptors", () => {
    it("1,000 connections with abrupt client and backend closes leave the fd count where it started", async () => {
      // Backend that resets half of its connections right away and echoes the rest.
      let n = 0;
      const rude = await tcpBackend("127.0.3.2", 7007, (s) => {
        s.on("error", () => {});
        if (n++ % 2 === 0) s.resetAndDestroy();
        else s.pipe(s);
      });
      try {
        await stillServes();
        // This process (the Node data plane, or HAProxy's slow path) and HAProxy's workers,
        // which hold the HAProxy engine's connections.
        const pids = await lab.dataPlanePids();
        expect(pids.length).toBe(engine === "node" ? 1 : 1 + lab.config.core.proxy.workers);
        const start = pids.map((pid) => openFdCount(pid));
        const one = (k: number) =>
          new Promise<void>((resolve) => {
            const s = tlsConnect({
              port: lab.port,
              host: "127.0.0.1",
              servername: `${APP_A}-7007.${TEST_DOMAIN}`,
              ca: lab.ca.certPem,
            });
            s.on("error", () => {});
            s.resume();
            s.once("close", () => resolve());
            s.once("secureConnect", () => {
              s.write("hello");
              if (k % 3 === 0) s.destroy();
              else if (k % 3 === 1) setTimeout(() => s.destroy(), 5);
              else s.end();
            });
            setTimeout(() => s.destroy(), 3_000);
          });
        for (let batch = 0; batch < 20; batch++) {
          await Promise.all(Array.from({ length: 50 }, (_, k) => one(batch * 50 + k)));
        }
        for (const [i, pid] of pids.entries()) {
          const was = start[i] ?? 0;
          expect(await waitForFds(was, 3, 5_000, pid), `pid ${pid}`).toBeLessThanOrEqual(was + 3);
        }
        await stillServes();
      } finally {
        await rude.close();
      }
    }, 60_000);
  });
});
