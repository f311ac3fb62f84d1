import { copyFileSync, renameSync } from "node:fs";
import { request } from "node:http";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeProxyV2 } from "../../../gateway-runtime/proxy/proxy-protocol.js";
import { issueLeaf } from "../../../testkit/certs.js";
import { until } from "../../../testkit/poll.js";
import { silentAddress } from "../../helpers/silent.js";
import {
  APP_A,
  APP_B,
  type Backend,
  curl,
  ENGINES,
  httpBackend,
  type ProxyLab,
  startProxyLab,
  TEST_DOMAIN,
  tcpBackend,
} from "./harness.js";

/** A terminated connection to `servername` through `lab`, once its handshake is done. */
function openTls(lab: ProxyLab, servername: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port: lab.port, host: "127.0.0.1", servername, ca: lab.ca.certPem });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
  });
}

const get = (lab: ProxyLab, host: string) => curl(lab, host, "/", ["-H", "connection: close"]);

describe.each(ENGINES)("on the %s engine", (engine) => {
  let lab: ProxyLab;
  const backends: Backend[] = [];
  const headers: Buffer[] = [];
  const accepted = () => (backends[0]?.accepted ?? 0) + (backends[1]?.accepted ?? 0);
  const instanceOf = async (host: string) => (await get(lab, host)).stdout.split(" ")[0];
  const app = async (id: string) => (await lab.snapshot()).apps[id];

  beforeAll(async () => {
    lab = await startProxyLab(
      {
        "core.proxy.max_connections_per_ip": 0,
        "core.proxy.timeouts.cache_top_n": "1ms",
        "core.proxy.app_overrides": { [APP_B]: { proxy_protocol: true, max_connections: 2 } },
      },
      { engine },
    );
    await lab.addInstance("aa01", APP_A, "127.0.4.2");
    await lab.addInstance("aa02", APP_A, "127.0.4.3");
    await lab.addInstance("bb01", APP_B, "127.0.4.4");
    backends.push(
      await httpBackend("i1", "127.0.4.2", 8080),
      await httpBackend("i2", "127.0.4.3", 8080),
    );
    backends.push(
      await tcpBackend("127.0.4.4", 8080, (s) => {
        // What came before the client's first bytes; HAProxy may send the header on its own.
        let got = Buffer.alloc(0);
        const onData = (d: Buffer) => {
          got = Buffer.concat([got, d]);
          if (got.length <= (decodeProxyV2(got)?.headerLength ?? 0)) return;
          s.off("data", onData);
          headers.push(got);
          s.write("ok\n");
        };
        s.on("data", onData);
        s.on("error", () => {});
      }),
    );
  });

  afterAll(async () => {
    for (const b of backends.splice(0)) await b.close();
    await lab?.close();
  });

  describe("instance choice", () => {
    it("spreads connections over an app's healthy instances", async () => {
      const seen = new Map<string, number>();
      for (let k = 0; k < 20; k++) {
        const who = await instanceOf(`${APP_A}-8080.${TEST_DOMAIN}`);
        seen.set(who ?? "", (seen.get(who ?? "") ?? 0) + 1);
      }
      expect([...seen.keys()].sort()).toEqual(["i1", "i2"]);
      expect(Math.min(...seen.values())).toBeGreaterThanOrEqual(4);
    });

    it("sends nothing to an instance whose WireGuard handshake is stale", async () => {
      lab.directory.setHandshake("aa02", Date.now() - 6 * 60_000);
      await lab.settle();
      for (let k = 0; k < 8; k++)
        expect(await instanceOf(`${APP_A}-8080.${TEST_DOMAIN}`)).toBe("i1");
      lab.directory.setHandshake("aa02", Date.now());
      await lab.settle();
    });

    it("an instance that refuses does not fail the connection", async () => {
      await lab.addInstance("aa03", APP_A, "127.0.4.9"); // nothing listens there
      for (let k = 0; k < 8; k++)
        expect(["i1", "i2"]).toContain(await instanceOf(`${APP_A}-8080.${TEST_DOMAIN}`));
      lab.directory.remove("aa03");
      await lab.settle();
    });

    it("dials the candidates as the engine is designed to", async () => {
      const before = accepted();
      for (let k = 0; k < 4; k++) await get(lab, `${APP_A}-8080.${TEST_DOMAIN}`);
      // Node: every candidate of each connection at once (the seed's race), so both instances
      // for each of the 4. HAProxy: one server per connection, another only when a connect
      // fails (retries with redispatch, README "Data plane engines"), so one dial for each.
      const want = engine === "node" ? 8 : 4;
      await until(`${want} dials for 4 connections`, () => accepted() - before === want, 3_000);
      await new Promise((r) => setTimeout(r, 100));
      expect(accepted() - before).toBe(want);
    });

    it("fails cleanly, counted, when no instance answers", async () => {
      const before = await lab.snapshot();
      const r = await get(lab, `${APP_A}-8999.${TEST_DOMAIN}`);
      expect(r.code).not.toBe(0);
      const after = await lab.snapshot();
      const failed = (s: typeof before) => s.apps[APP_A]?.rejected.E_CONNECT_FAILED ?? 0;
      expect(failed(after) - failed(before)).toBe(1);
      const refused = ["aa01", "aa02"].map(
        (id) => (after.connectFailures[id] ?? 0) - (before.connectFailures[id] ?? 0),
      );
      // Node: each instance dialled once in the race, refused once, and the metrics say so.
      // HAProxy: `connect_top_n` (3) attempts in turn, each moved to the next server, so with
      // two instances one is tried twice (README "Data plane engines").
      if (engine === "node") expect(refused).toEqual([1, 1]);
      else expect(refused.sort()).toEqual([1, 2]);
    });
  });

  describe("connect_attempt_delay: candidates dialled in turn", () => {
    it("dials one instance per connection; a silent one costs what the engine is designed to", async () => {
      const turn = await startProxyLab(
        {
          "core.proxy.connect_attempt_delay": "1s",
          "core.proxy.balance": "round_robin",
          "core.proxy.timeouts.cache_top_n": "1ms",
        },
        { engine },
      );
      const silent = await silentAddress("127.0.4.10", 8080);
      const host = `${APP_A}-8080.${TEST_DOMAIN}`;
      try {
        await turn.addInstance("aa01", APP_A, "127.0.4.2");
        await turn.addInstance("aa02", APP_A, "127.0.4.3");
        const before = accepted();
        for (let k = 0; k < 6; k++)
          expect((await curl(turn, host, "/", ["-H", "connection: close"])).code).toBe(0);
        await new Promise((r) => setTimeout(r, 100));
        expect(accepted() - before).toBe(6);

        turn.directory.remove("aa02");
        await turn.addInstance("aa09", APP_A, "127.0.4.10"); // round robin puts it first in turn
        const took: number[] = [];
        for (let k = 0; k < 6; k++) {
          const started = Date.now();
          const r = await curl(turn, host, "/", ["-H", "connection: close"]);
          took.push(Date.now() - started);
          expect(r.stdout).toMatch(/^i1 /);
        }
        if (engine === "node") {
          // The first connection that dialled it waited out the delay; then it is tried last.
          expect(took.filter((ms) => ms >= 900)).toHaveLength(1);
        } else {
          // HAProxy has no delay between attempts: an attempt ends at `timeouts.connect /
          // connect_top_n` (2 s / 3) and the connect goes to another server, and a failed
          // server is not put last (render.ts), so each turn of round robin on it waits again.
          const attempt = 2_000 / 3;
          const slow = took.filter((ms) => ms >= attempt - 50);
          expect(slow.length).toBeGreaterThanOrEqual(2);
          for (const ms of slow) expect(ms).toBeLessThan(2 * attempt + 500);
        }
      } finally {
        await silent.close();
        await turn.close();
      }
    });
  });

  describe("PROXY protocol v2 and per-app limits", () => {
    it("prefixes the client address for an app that asks for it", async () => {
      const s = await openTls(lab, `${APP_B}-8080.${TEST_DOMAIN}`);
      s.write("hello");
      await new Promise((r) => s.once("data", r));
      s.destroy();
      const header = decodeProxyV2(headers.at(-1) ?? Buffer.alloc(0));
      // The destination: the gateway's address and port on Node; with HAProxy the CVM's port,
      // which it rewrote to dial the instance (README "Data plane engines").
      expect(header).toMatchObject({
        sourceAddress: "127.0.0.1",
        destAddress: "127.0.0.1",
        destPort: engine === "node" ? lab.port : 8080,
      });
      expect(headers.at(-1)?.subarray(header?.headerLength).toString()).toBe("hello");
    });

    it("sends no header to apps that did not ask", async () => {
      expect((await get(lab, `${APP_A}-8080.${TEST_DOMAIN}`)).stdout).toMatch(/^i[12] GET \/ 0 /);
    });

    it("refuses the third connection of an app limited to two, and counts why", async () => {
      const before = (await app(APP_B))?.rejected.E_LIMIT_APP ?? 0;
      const open = [
        await openTls(lab, `${APP_B}-8080.${TEST_DOMAIN}`),
        await openTls(lab, `${APP_B}-8080.${TEST_DOMAIN}`),
      ];
      await new Promise((r) => setTimeout(r, 50));
      await expect(openTls(lab, `${APP_B}-8080.${TEST_DOMAIN}`)).rejects.toThrow();
      expect((await app(APP_B))?.rejected.E_LIMIT_APP ?? 0).toBe(before + 1);
      for (const s of open) s.destroy();
    });
  });

  describe("per-app counters", () => {
    it("count connections and bytes each way", async () => {
      const before = { ...(await app(APP_A)) };
      await get(lab, `${APP_A}-8080.${TEST_DOMAIN}`);
      let after = await app(APP_A);
      await until(
        "the connection counted as closed",
        async () => {
          after = await app(APP_A);
          return after?.active === 0 && (after?.total ?? 0) > (before.total ?? 0);
        },
        3_000,
      );
      expect((after?.total ?? 0) - (before.total ?? 0)).toBe(1);
      expect(after?.active).toBe(0);
      expect((after?.bytesToBackend ?? 0) - (before.bytesToBackend ?? 0)).toBeGreaterThan(50);
      expect((after?.bytesToClient ?? 0) - (before.bytesToClient ?? 0)).toBeGreaterThan(50);
    });
  });

  describe("port 80", () => {
    it("redirects every request to https, same host and path", async () => {
      const res = await new Promise<{ status: number | undefined; location: string | undefined }>(
        (resolve, reject) => {
          const req = request(
            {
              host: "127.0.0.1",
              port: lab.httpPort,
              path: "/a/b?c=1",
              headers: { host: `${APP_A}.${TEST_DOMAIN}` },
            },
            (r) => {
              r.resume();
              resolve({ status: r.statusCode, location: r.headers.location });
            },
          );
          req.once("error", reject);
          req.end();
        },
      );
      expect(res).toEqual({
        status: 308,
        location: `https://${APP_A}.${TEST_DOMAIN}:${lab.port}/a/b?c=1`,
      });
    });
  });

  describe("certificate reload", () => {
    it("new connections get the new certificate; an open connection keeps working", async () => {
      const held = await openTls(lab, `${APP_A}-8080.${TEST_DOMAIN}`);
      const oldSerial = held.getPeerCertificate().serialNumber;
      const next = issueLeaf(lab.ca);
      const p = lab.config.core.proxy;
      copyFileSync(next.keyFile, `${p.cert_key}.new`);
      copyFileSync(next.certFile, `${p.cert_chain}.new`);
      renameSync(`${p.cert_key}.new`, p.cert_key);
      renameSync(`${p.cert_chain}.new`, p.cert_chain);
      await lab.reloadCertificate();
      const fresh = await openTls(lab, `${APP_A}-8080.${TEST_DOMAIN}`);
      expect(fresh.getPeerCertificate().serialNumber).toBe(next.serial);
      expect(next.serial).not.toBe(oldSerial);
      fresh.destroy();
      held.write(`GET /still HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
      const reply = await new Promise<string>((resolve) => {
        let text = "";
        held.on("data", (d: Buffer) => (text += d.toString()));
        held.once("end", () => resolve(text));
      });
      expect(reply).toMatch(/i[12] GET \/still 0 /);
    });
  });

  describe("per-client-IP limit", () => {
    it("refuses a client's connection beyond the limit, and counts why", async () => {
      const limited = await startProxyLab({ "core.proxy.max_connections_per_ip": 2 }, { engine });
      try {
        await limited.addInstance("aa01", APP_A, "127.0.4.2");
        const host = `${APP_A}-8080.${TEST_DOMAIN}`;
        const open = [await openTls(limited, host), await openTls(limited, host)];
        await expect(openTls(limited, host)).rejects.toThrow();
        expect((await limited.snapshot()).rejected.E_LIMIT_IP).toBe(1);
        for (const s of open) s.destroy();
        await until(
          "the closed connections no longer counted for the client",
          async () => (await limited.snapshot()).apps[APP_A]?.active === 0,
          3_000,
        );
        (await openTls(limited, host)).destroy();
      } finally {
        await limited.close();
      }
    });
  });

  describe("stopping the data plane", () => {
    it("ends open connections, bridged and still connecting, and refuses new ones", async () => {
      const lab2 = await startProxyLab({}, { engine });
      try {
        await lab2.addInstance("aa01", APP_A, "127.0.4.2");
        const open = await openTls(lab2, `${APP_A}-8080.${TEST_DOMAIN}`);
        open.on("error", () => {});
        const closed = new Promise((r) => open.once("close", r));
        const started = Date.now();
        await lab2.stop();
        await closed;
        expect(Date.now() - started).toBeLessThan(1_000);
        await expect(openTls(lab2, `${APP_A}-8080.${TEST_DOMAIN}`)).rejects.toThrow(/ECONNREFUSED/);
      } finally {
        await lab2.close();
      }
    });
  });
});
