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
  httpBackend,
  type ProxyLab,
  startProxyLab,
  TEST_DOMAIN,
  tcpBackend,
} from "./harness.js";

let lab: ProxyLab;
const backends: Backend[] = [];
const headers: Buffer[] = [];

beforeAll(async () => {
  lab = await startProxyLab({
    "core.proxy.max_connections_per_ip": 0,
    "core.proxy.timeouts.cache_top_n": "1ms",
    "core.proxy.app_overrides": { [APP_B]: { proxy_protocol: true, max_connections: 2 } },
  });
  lab.addInstance("aa01", APP_A, "127.0.4.2");
  lab.addInstance("aa02", APP_A, "127.0.4.3");
  lab.addInstance("bb01", APP_B, "127.0.4.4");
  backends.push(
    await httpBackend("i1", "127.0.4.2", 8080),
    await httpBackend("i2", "127.0.4.3", 8080),
  );
  backends.push(
    await tcpBackend("127.0.4.4", 8080, (s) => {
      s.once("data", (d: Buffer) => {
        headers.push(d);
        s.write("ok\n");
      });
      s.on("error", () => {});
    }),
  );
});

afterAll(async () => {
  for (const b of backends) await b.close();
  await lab?.close();
});

const get = (host: string) => curl(lab, host, "/", ["-H", "connection: close"]);
const instanceOf = async (host: string) => (await get(host)).stdout.split(" ")[0];

function openTls(servername: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port: lab.port, host: "127.0.0.1", servername, ca: lab.ca.certPem });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
  });
}

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
    await new Promise((r) => setTimeout(r, 5));
    for (let k = 0; k < 8; k++) expect(await instanceOf(`${APP_A}-8080.${TEST_DOMAIN}`)).toBe("i1");
    lab.directory.setHandshake("aa02", Date.now());
  });

  it("races the candidates: an instance that refuses does not fail the connection", async () => {
    lab.addInstance("aa03", APP_A, "127.0.4.9"); // nothing listens there
    for (let k = 0; k < 8; k++)
      expect(["i1", "i2"]).toContain(await instanceOf(`${APP_A}-8080.${TEST_DOMAIN}`));
    lab.directory.remove("aa03");
  });

  it("dials every candidate of each connection at once by default (the seed's race)", async () => {
    const before = (backends[0]?.accepted ?? 0) + (backends[1]?.accepted ?? 0);
    for (let k = 0; k < 4; k++) await get(`${APP_A}-8080.${TEST_DOMAIN}`);
    await until(
      "both instances dialled for each connection",
      () => (backends[0]?.accepted ?? 0) + (backends[1]?.accepted ?? 0) - before === 8,
      3_000,
    );
  });

  it("fails cleanly, counted, when no instance answers", async () => {
    const before = (await lab.plane.snapshot()).connectFailures;
    const r = await get(`${APP_A}-8999.${TEST_DOMAIN}`);
    expect(r.code).not.toBe(0);
    expect(lab.plane.proxy.stats.app(APP_A)?.rejected.get("E_CONNECT_FAILED")).toBe(1);
    // Each instance refused once, and the metrics say so.
    const after = (await lab.plane.snapshot()).connectFailures;
    for (const id of ["aa01", "aa02"]) expect((after[id] ?? 0) - (before[id] ?? 0)).toBe(1);
  });
});

describe("connect_attempt_delay: candidates dialled in turn", () => {
  it("dials one instance per connection, and after a silent one held a connection up, tries it last", async () => {
    const turn = await startProxyLab({
      "core.proxy.connect_attempt_delay": "1s",
      "core.proxy.balance": "round_robin",
      "core.proxy.timeouts.cache_top_n": "1ms",
    });
    const silent = await silentAddress("127.0.4.10", 8080);
    try {
      turn.addInstance("aa01", APP_A, "127.0.4.2");
      turn.addInstance("aa02", APP_A, "127.0.4.3");
      const before = (backends[0]?.accepted ?? 0) + (backends[1]?.accepted ?? 0);
      for (let k = 0; k < 6; k++)
        expect(
          (await curl(turn, `${APP_A}-8080.${TEST_DOMAIN}`, "/", ["-H", "connection: close"])).code,
        ).toBe(0);
      await new Promise((r) => setTimeout(r, 100));
      expect((backends[0]?.accepted ?? 0) + (backends[1]?.accepted ?? 0) - before).toBe(6);

      turn.directory.remove("aa02");
      turn.addInstance("aa09", APP_A, "127.0.4.10"); // round robin puts it first every other time
      const took: number[] = [];
      for (let k = 0; k < 6; k++) {
        const started = Date.now();
        const r = await curl(turn, `${APP_A}-8080.${TEST_DOMAIN}`, "/", [
          "-H",
          "connection: close",
        ]);
        took.push(Date.now() - started);
        expect(r.stdout).toMatch(/^i1 /);
      }
      // Only the first connection that dialled it waited out the delay.
      expect(took.filter((ms) => ms >= 900)).toHaveLength(1);
    } finally {
      await silent.close();
      await turn.close();
    }
  });
});

describe("PROXY protocol v2 and per-app limits", () => {
  it("prefixes the client address for an app that asks for it", async () => {
    const s = await openTls(`${APP_B}-8080.${TEST_DOMAIN}`);
    s.write("hello");
    await new Promise((r) => s.once("data", r));
    s.destroy();
    const header = decodeProxyV2(headers.at(-1) ?? Buffer.alloc(0));
    expect(header).toMatchObject({
      sourceAddress: "127.0.0.1",
      destAddress: "127.0.0.1",
      destPort: lab.port,
    });
    expect(headers.at(-1)?.subarray(header?.headerLength).toString()).toBe("hello");
  });

  it("sends no header to apps that did not ask", async () => {
    expect((await get(`${APP_A}-8080.${TEST_DOMAIN}`)).stdout).toMatch(/^i[12] GET \/ 0 /);
  });

  it("refuses the third connection of an app limited to two, and counts why", async () => {
    const open = [
      await openTls(`${APP_B}-8080.${TEST_DOMAIN}`),
      await openTls(`${APP_B}-8080.${TEST_DOMAIN}`),
    ];
    await new Promise((r) => setTimeout(r, 50));
    await expect(openTls(`${APP_B}-8080.${TEST_DOMAIN}`)).rejects.toThrow();
    expect(lab.plane.proxy.stats.app(APP_B)?.rejected.get("E_LIMIT_APP")).toBe(1);
    for (const s of open) s.destroy();
  });
});

describe("per-app counters", () => {
  it("count connections and bytes each way", async () => {
    const before = { ...lab.plane.proxy.stats.app(APP_A) };
    await get(`${APP_A}-8080.${TEST_DOMAIN}`);
    await until(
      "the connection counted as closed",
      () => lab.plane.proxy.stats.app(APP_A)?.active === 0,
      3_000,
    );
    const after = lab.plane.proxy.stats.app(APP_A);
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
    const held = await openTls(`${APP_A}-8080.${TEST_DOMAIN}`);
    const oldSerial = held.getPeerCertificate().serialNumber;
    const next = issueLeaf(lab.ca);
    const p = lab.config.core.proxy;
    copyFileSync(next.keyFile, `${p.cert_key}.new`);
    copyFileSync(next.certFile, `${p.cert_chain}.new`);
    renameSync(`${p.cert_key}.new`, p.cert_key);
    renameSync(`${p.cert_chain}.new`, p.cert_chain);
    const result = await lab.plane.terminator.reload();
    expect(result.ok).toBe(true);
    const fresh = await openTls(`${APP_A}-8080.${TEST_DOMAIN}`);
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
    const limited = await startProxyLab({ "core.proxy.max_connections_per_ip": 2 });
    try {
      limited.addInstance("aa01", APP_A, "127.0.4.2");
      const open: TLSSocket[] = [];
      const connectTo = (servername: string) =>
        new Promise<TLSSocket>((resolve, reject) => {
          const s = tlsConnect({
            port: limited.port,
            host: "127.0.0.1",
            servername,
            ca: limited.ca.certPem,
          });
          s.once("secureConnect", () => resolve(s));
          s.once("error", reject);
        });
      open.push(
        await connectTo(`${APP_A}-8080.${TEST_DOMAIN}`),
        await connectTo(`${APP_A}-8080.${TEST_DOMAIN}`),
      );
      await expect(connectTo(`${APP_A}-8080.${TEST_DOMAIN}`)).rejects.toThrow();
      expect(limited.plane.proxy.stats.rejections().get("E_LIMIT_IP")).toBe(1);
      for (const s of open) s.destroy();
      await until(
        "the closed connections no longer counted for the client",
        () => limited.plane.proxy.stats.app(APP_A)?.active === 0,
        3_000,
      );
      const again = await connectTo(`${APP_A}-8080.${TEST_DOMAIN}`);
      again.destroy();
    } finally {
      await limited.close();
    }
  });
});

describe("stopping the data plane", () => {
  it("ends open connections, bridged and still connecting, and refuses new ones", async () => {
    const lab2 = await startProxyLab();
    try {
      lab2.addInstance("aa01", APP_A, "127.0.4.2");
      const open = await new Promise<TLSSocket>((resolve, reject) => {
        const s = tlsConnect({
          port: lab2.port,
          host: "127.0.0.1",
          servername: `${APP_A}-8080.${TEST_DOMAIN}`,
          ca: lab2.ca.certPem,
        });
        s.once("secureConnect", () => resolve(s));
        s.once("error", reject);
      });
      open.on("error", () => {});
      const closed = new Promise((r) => open.once("close", r));
      const started = Date.now();
      await lab2.plane.stop();
      await closed;
      expect(Date.now() - started).toBeLessThan(1_000);
      await expect(
        new Promise((resolve, reject) => {
          const s = tlsConnect({
            port: lab2.port,
            host: "127.0.0.1",
            servername: `${APP_A}-8080.${TEST_DOMAIN}`,
            ca: lab2.ca.certPem,
          });
          s.once("secureConnect", resolve);
          s.once("error", reject);
        }),
      ).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await lab2.close();
    }
  });
});
