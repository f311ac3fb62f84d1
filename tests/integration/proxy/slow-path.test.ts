/**
 * The slow path behind the HAProxy engine: the Node data plane on a Unix socket, each
 * connection starting with the PROXY v2 header HAProxy sends (`send-proxy-v2`). The client's
 * address comes from the header; the rest goes on as on :443.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { Writable } from "node:stream";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../../gateway-runtime/log/index.js";
import { decodeProxyV2, encodeProxyV2 } from "../../../gateway-runtime/proxy/proxy-protocol.js";
import { until } from "../../../testkit/poll.js";
import { clientHello } from "../../helpers/client-hello.js";
import {
  APP_A,
  type Backend,
  type ProxyLab,
  startProxyLab,
  TEST_DOMAIN,
  tcpBackend,
} from "./harness.js";

const dir = mkdtempSync(join(tmpdir(), "slow-path-"));
const socketPath = join(dir, "node.sock");
const BACKEND_IP = "127.0.7.2";
const hooked: [string, { appId: string; port: number; ttlMs: number }][] = [];
/** The data plane's log lines at warn and above. */
const logged: { level: number; code?: string; msg: string }[] = [];
/** What each backend connection received, in order of arrival. */
const received: Buffer[][] = [];

let lab: ProxyLab;
let plain: Backend;
let passthrough: Backend;

/** HAProxy's header for a client at `ip:port` that reached the gateway's 198.51.100.1:443. */
const headerFrom = (ip: string, port = 40_000) =>
  encodeProxyV2({
    sourceAddress: ip,
    sourcePort: port,
    destAddress: "198.51.100.1",
    destPort: 443,
  });

const rejected = (code: string) => lab.plane.proxy.stats.rejections().get(code) ?? 0;

/** A backend that records every byte of each connection and answers `ok` to each chunk. */
function recording(port: number): Promise<Backend> {
  return tcpBackend(BACKEND_IP, port, (s) => {
    const chunks: Buffer[] = [];
    received.push(chunks);
    s.on("data", (d: Buffer) => {
      chunks.push(d);
      s.write("ok\n");
    });
    s.on("error", () => {});
  });
}

/** Opens the slow-path socket and sends `first` (the header, or anything else). */
function openSlow(first: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ path: socketPath }, () => {
      s.write(first);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/** A TLS client through the slow path, its header from `ip`; resolves once secure. */
async function tlsThrough(ip: string, servername: string): Promise<TLSSocket> {
  const raw = await openSlow(headerFrom(ip));
  const tls = tlsConnect({ socket: raw, servername, ca: lab.ca.certPem });
  await new Promise<void>((resolve, reject) => {
    tls.once("secureConnect", resolve);
    tls.once("error", reject);
    tls.once("close", () => reject(new Error("closed before the handshake")));
  });
  return tls;
}

/** Resolves when `s` closes (bounded); true when it closed without a byte read. */
function closedSilently(s: Socket): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let data = false;
    s.on("data", () => (data = true));
    s.on("error", () => {});
    const guard = setTimeout(() => reject(new Error("still open")), 5_000);
    s.once("close", () => {
      clearTimeout(guard);
      resolve(!data);
    });
  });
}

beforeAll(async () => {
  lab = await startProxyLab(
    {
      "core.proxy.max_connections_per_ip": 1,
      "core.proxy.app_overrides": { [APP_A]: { proxy_protocol: true } },
      "core.proxy.timeouts.handshake": "1s",
    },
    {
      slowPathSocket: socketPath,
      onCustomDomain: (name, answer) => hooked.push([name, answer]),
      log: createLogger(
        "warn",
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            logged.push(JSON.parse(chunk.toString()));
            done();
          },
        }),
      ),
    },
  );
  lab.addInstance("aa07", APP_A, BACKEND_IP);
  plain = await recording(8080);
  passthrough = await recording(8443);
});

afterAll(async () => {
  await plain?.close();
  await passthrough?.close();
  await lab?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the slow path's socket", () => {
  it("is the only listener: a Unix socket, owner only, no TCP port and no redirect", () => {
    expect(lab.plane.proxy.path()).toBe(socketPath);
    expect(statSync(socketPath).isSocket()).toBe(true);
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    expect(lab.plane.redirect).toBeUndefined();
  });
});

describe("the client's address is the header's", () => {
  it("reaches the backend in the PROXY v2 header the app asked for", async () => {
    const before = received.length;
    const tls = await tlsThrough("203.0.113.7", `${APP_A}-8080.${TEST_DOMAIN}`);
    tls.write("hello\n");
    const bytes = await until(
      "the backend's bytes",
      () => {
        const all = Buffer.concat(received[before] ?? []);
        return all.toString().endsWith("hello\n") && all;
      },
      5_000,
    );
    tls.destroy();
    const header = decodeProxyV2(bytes);
    expect(header).toMatchObject({
      sourceAddress: "203.0.113.7",
      sourcePort: 40_000,
      destAddress: "198.51.100.1",
      destPort: 443,
    });
    expect(bytes.subarray(header?.headerLength).toString()).toBe("hello\n");
  });

  it("counts per-IP limits by the header's address", async () => {
    const first = await tlsThrough("203.0.113.8", `${APP_A}-8080.${TEST_DOMAIN}`);
    const before = rejected("E_LIMIT_IP");
    const second = await openSlow(headerFrom("203.0.113.8", 40_001));
    expect(await closedSilently(second)).toBe(true);
    expect(rejected("E_LIMIT_IP")).toBe(before + 1);
    // Another client over the same socket is not held by the first one's count.
    const other = await tlsThrough("203.0.113.9", `${APP_A}-8080.${TEST_DOMAIN}`);
    other.destroy();
    first.destroy();
  });

  it("passes a ClientHello sent in the header's write through untouched", async () => {
    const hello = await clientHello(`${APP_A}-8443s.${TEST_DOMAIN}`);
    const before = received.length;
    const s = await openSlow(Buffer.concat([headerFrom("2001:db8::5"), hello]));
    s.on("error", () => {});
    const bytes = await until(
      "the backend's bytes",
      () => {
        const all = Buffer.concat(received[before] ?? []);
        const header = decodeProxyV2(all);
        return header !== undefined && all.length >= header.headerLength + hello.length && all;
      },
      5_000,
    );
    s.destroy();
    const header = decodeProxyV2(bytes);
    expect(header?.sourceAddress).toBe("2001:db8::5");
    expect(bytes.subarray(header?.headerLength).equals(hello)).toBe(true);
  });
});

describe("routing as on :443", () => {
  it("an unknown name is refused for its route, no backend dialled", async () => {
    const [before, accepted] = [rejected("E_ROUTE_UNKNOWN_APP"), plain.accepted];
    const s = await openSlow(
      Buffer.concat([headerFrom("203.0.113.10"), await clientHello(`cafe00.${TEST_DOMAIN}`)]),
    );
    expect(await closedSilently(s)).toBe(true);
    expect(rejected("E_ROUTE_UNKNOWN_APP")).toBe(before + 1);
    expect(plain.accepted).toBe(accepted);
  });

  it("a custom domain's answer goes to the hook with its TTL, and the connection through", async () => {
    lab.dns.setTtl(30);
    lab.dns.setTxt("_dstack-app-address.shop.customer.example", [`${APP_A}:8443`]);
    const before = received.length;
    const s = await openSlow(
      Buffer.concat([headerFrom("203.0.113.11"), await clientHello("Shop.Customer.Example.")]),
    );
    s.on("error", () => {});
    await until("the backend's connection", () => received.length > before, 5_000);
    s.destroy();
    expect(hooked.map(([name, a]) => [name, a.appId, a.port])).toEqual([
      ["shop.customer.example", APP_A, 8443],
    ]);
    const ttlMs = hooked[0]?.[1].ttlMs ?? 0;
    expect(ttlMs).toBeGreaterThan(29_000);
    expect(ttlMs).toBeLessThanOrEqual(30_000);
  });

  it("an answer with TTL 0 is not handed to the hook (nothing would hold it)", async () => {
    lab.dns.setTtl(0);
    lab.dns.setTxt("_dstack-app-address.now.customer.example", [`${APP_A}:8443`]);
    const [before, calls] = [received.length, hooked.length];
    const s = await openSlow(
      Buffer.concat([headerFrom("203.0.113.12"), await clientHello("now.customer.example")]),
    );
    s.on("error", () => {});
    await until("the backend's connection", () => received.length > before, 5_000);
    s.destroy();
    expect(hooked.length).toBe(calls);
  });
});

describe("a connection without a PROXY v2 header is refused with a code", () => {
  it("a bare ClientHello: E_PROXY_HEADER_MISSING, no backend dialled", async () => {
    const [before, accepted] = [rejected("E_PROXY_HEADER_MISSING"), passthrough.accepted];
    const s = await openSlow(await clientHello(`${APP_A}-8443s.${TEST_DOMAIN}`));
    expect(await closedSilently(s)).toBe(true);
    expect(rejected("E_PROXY_HEADER_MISSING")).toBe(before + 1);
    expect(passthrough.accepted).toBe(accepted);
    // Logged as a warning (only HAProxy connects there), with the code and why.
    expect(logged.at(-1)).toMatchObject({
      level: 40,
      code: "E_PROXY_HEADER_MISSING",
      msg: expect.stringMatching(/did not start with a PROXY v2 header/),
    });
  });

  it("a LOCAL header (no client address): E_PROXY_HEADER_MISSING", async () => {
    const local = Buffer.from(headerFrom("203.0.113.13"));
    local[12] = 0x20; // version 2, command LOCAL
    const before = rejected("E_PROXY_HEADER_MISSING");
    expect(await closedSilently(await openSlow(local))).toBe(true);
    expect(rejected("E_PROXY_HEADER_MISSING")).toBe(before + 1);
  });

  it("half a header, then nothing: E_PROXY_HEADER_TIMEOUT after the handshake bound (1 s)", async () => {
    const before = rejected("E_PROXY_HEADER_TIMEOUT");
    const start = Date.now();
    expect(await closedSilently(await openSlow(headerFrom("203.0.113.14").subarray(0, 20)))).toBe(
      true,
    );
    expect(Date.now() - start).toBeGreaterThanOrEqual(950);
    expect(rejected("E_PROXY_HEADER_TIMEOUT")).toBe(before + 1);
  });
});
