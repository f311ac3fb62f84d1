import { createServer as createHttpServer, type Server } from "node:http";
import { Agent } from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { authorize } from "../../../gateway-runtime/auth/authorize.js";
import { RpcServer, type RpcServerOptions } from "../../../gateway-runtime/rpc/index.js";
import { createCa, issueLeaf, type TestCa } from "../../../testkit/certs.js";
import { openFdCount, waitForFds } from "../../helpers/fds.js";
import {
  appInfoSpec,
  createTestCa,
  issueRaTlsCert,
  raTlsExt,
  type TestCert,
} from "../../../testkit/ra-tls.js";
import { APP, CONFIG, HOUR, type Harness, harness } from "../registration/harness.js";
import { wgKey } from "../registry/net.js";
import { type CallOptions, call, rawTls, SERVERNAME } from "./client.js";

const I1 = "11".repeat(20);
const I2 = "22".repeat(20);
const I3 = "33".repeat(20);
const REGISTER = "/prpc/RegisterCvm?json";

let serverCa: TestCa;
let serverCert: { certFile: string; keyFile: string };
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  serverCa = createCa();
  serverCert = issueLeaf(serverCa, { sans: [SERVERNAME] });
});
afterAll(() => serverCa.cleanup());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(h: Harness, extra: Partial<RpcServerOptions> = {}): Promise<RpcServer> {
  const server = await RpcServer.start({
    handler: h.service,
    ...serverCert,
    address: "127.0.0.1",
    port: 0,
    headersTimeoutMs: 10_000, // the slow-loris test sets its own
    requestTimeoutMs: 10_000,
    ...extra,
  });
  cleanups.push(
    () => server.close(),
    () => h.cleanup(),
  );
  return server;
}

async function setup(extra: Partial<RpcServerOptions> = {}, h?: Harness) {
  const hh = h ?? (await harness());
  const server = await start(hh, extra);
  const post = (path: string, o: CallOptions = {}) => call(server.port, serverCa.certPem, path, o);
  const register = (cert: TestCert, key: number, path = REGISTER) =>
    post(path, {
      cert,
      chain: [hh.appCa],
      body: JSON.stringify({ client_public_key: wgKey(key) }),
    });
  return { h: hh, server, post, register };
}

const errorOf = (code: string) => ({ error: expect.any(String), code });

describe("RPC server: RegisterCvm over mutual TLS", () => {
  it("registers a KMS-certified CVM and answers dstack's response exactly", async () => {
    const { h, register } = await setup();
    const res = await register(h.cert(I1), 1);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(res.body).toBe(
      JSON.stringify({
        wg: {
          client_ip: "10.4.0.32",
          servers: [
            { pk: CONFIG.core.wg.public_key, ip: "10.4.0.1/16", endpoint: "192.0.2.1:51820" },
          ],
        },
        agent: {
          external_port: 443,
          internal_port: 8090,
          domain: "app.test.example",
          app_address_ns_prefix: "_dstack-app-address",
        },
      }),
    );
    expect(h.directory.instance(I1)?.appId).toBe(APP);
  });

  it("accepts dstack's method spellings and a JSON Content-Type instead of ?json", async () => {
    const { h, register, post } = await setup();
    for (const path of ["/prpc/Gateway.RegisterCvm?json", "/prpc/Tproxy.RegisterCvm?json"]) {
      expect((await register(h.cert(I1), 1, path)).status).toBe(200);
    }
    const res = await post("/prpc/RegisterCvm", {
      cert: h.cert(I1),
      chain: [h.appCa],
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client_public_key: wgKey(1) }),
    });
    expect(res.status).toBe(200);
  });

  it("keeps the address when a CVM registers again", async () => {
    const { h, register } = await setup();
    const first = await register(h.cert(I1), 1);
    await register(h.cert(I2), 2);
    const again = await register(h.cert(I1), 3);
    expect((again.json as { wg: { client_ip: string } }).wg.client_ip).toBe(
      (first.json as { wg: { client_ip: string } }).wg.client_ip,
    );
  });

  it("answers 401 without a client certificate", async () => {
    const { post } = await setup();
    const res = await post(REGISTER, { body: JSON.stringify({ client_public_key: wgKey(1) }) });
    expect(res.status).toBe(401);
    expect(res.json).toEqual({
      error: "a client certificate (RA-TLS) is required",
      code: "E_RPC_NO_CLIENT_CERT",
    });
  });

  it("answers 401 for a certificate from another CA, from attestation or from TLS", async () => {
    const stranger = createTestCa("stranger");
    const cert = issueRaTlsCert(stranger, { appInfo: appInfoSpec(APP, I1) });
    const body = JSON.stringify({ client_public_key: wgKey(1) });
    const a = await setup();
    const res = await a.post(REGISTER, { cert, body });
    expect(res.status).toBe(401);
    expect(res.json).toEqual(errorOf("E_ATTEST_UNTRUSTED"));
    const hb = await harness();
    const b = await setup({ clientCaPem: hb.kms.pem }, hb);
    const tls = await b.post(REGISTER, { cert, body });
    expect(tls.status).toBe(401);
    expect(tls.json).toEqual(errorOf("E_RPC_CERT_UNTRUSTED"));
    expect((await b.register(b.h.cert(I1), 1)).status).toBe(200);
  });

  it.each([
    ["not JSON", "{", "E_RPC_BAD_JSON"],
    ["no key", "{}", "E_RPC_BAD_REQUEST"],
    ["a bad key", JSON.stringify({ client_public_key: "abc" }), "E_RPC_BAD_REQUEST"],
    [
      "port 0 in the policy",
      JSON.stringify({ client_public_key: wgKey(1), port_policy: { ports: [{ port: 0 }] } }),
      "E_RPC_BAD_REQUEST",
    ],
  ])("answers 400 for %s", async (_, body, code) => {
    const { h, post } = await setup();
    const res = await post(REGISTER, { cert: h.cert(I1), chain: [h.appCa], body });
    expect(res.status).toBe(400);
    expect(res.json).toEqual(errorOf(code));
  });

  it.each([
    ["all zeros", "A".repeat(43) + "="],
    ["one", `AQ${"A".repeat(41)}=`],
    ["a point of order 8", "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA="],
    ["p - 1 with the ignored top bit set", "7P////////////////////////////////////////8="],
  ])(
    "refuses a WireGuard key of small order (%s) with E_RPC_WEAK_KEY, writing nothing",
    async (_, key) => {
      const { h, post } = await setup();
      const body = JSON.stringify({ client_public_key: key });
      const res = await post(REGISTER, { cert: h.cert(I1), chain: [h.appCa], body });
      expect(res.status).toBe(400);
      expect(res.json).toEqual(errorOf("E_RPC_WEAK_KEY"));
      expect(h.store.list()).toEqual([]);
    },
  );

  it("answers 404 with a code for an unknown method, 405 for a wrong HTTP method", async () => {
    const { h, post } = await setup();
    const unknown = await post("/prpc/Gateway.Nope?json", { cert: h.cert(I1), body: "{}" });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({
      error: 'unknown method "/prpc/Gateway.Nope"',
      code: "E_RPC_UNKNOWN_METHOD",
    });
    const get = await post(REGISTER, { method: "GET", cert: h.cert(I1) });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe("POST");
  });

  it("answers 415 to a protobuf request (no ?json, no JSON Content-Type)", async () => {
    const { h, post } = await setup();
    const res = await post("/prpc/RegisterCvm", {
      cert: h.cert(I1),
      chain: [h.appCa],
      body: "\n\x2c",
    });
    expect(res.status).toBe(415);
    expect(res.json).toEqual(errorOf("E_RPC_UNSUPPORTED_ENCODING"));
  });

  it("answers 413 to a body over the limit, declared or streamed", async () => {
    const { h, post } = await setup({ maxBodyBytes: 1024 });
    const big = JSON.stringify({ client_public_key: wgKey(1), pad: "x".repeat(5000) });
    const declared = await post(REGISTER, { cert: h.cert(I1), body: big });
    expect(declared.status).toBe(413);
    expect(declared.json).toEqual(errorOf("E_RPC_BODY_TOO_LARGE"));
    expect(declared.headers.connection).toBe("close");
    const streamed = await post(REGISTER, {
      cert: h.cert(I1),
      headers: { "transfer-encoding": "chunked" },
      body: big,
    });
    expect(streamed.status).toBe(413);
  });

  it("closes a connection whose headers never finish (slow loris)", async () => {
    const { h, server } = await setup({ headersTimeoutMs: 300 });
    const socket = await rawTls(server.port, serverCa.certPem, h.cert(I1));
    let received = "";
    socket.on("data", (d: Buffer) => {
      received += d.toString();
    });
    const started = performance.now();
    socket.write("POST /prpc/RegisterCvm?json HTTP/1.1\r\nHost: x\r\n");
    const timer = setInterval(() => socket.write("X-Slow: 1\r\n"), 100);
    await new Promise((resolve) => socket.once("close", resolve));
    clearInterval(timer);
    expect(performance.now() - started).toBeLessThan(5_000); // well under the 10 s request timeout
    expect(received).toMatch(/^HTTP\/1\.1 408/);
  });

  it("answers 403 when the authorization service denies, 503 when it cannot be asked", async () => {
    const auth: Server = createHttpServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(req.url === "/deny" ? 403 : 200).end("no"));
    });
    await new Promise<void>((resolve) => auth.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise((resolve) => auth.close(() => resolve())));
    const base = `http://127.0.0.1:${(auth.address() as AddressInfo).port}`;
    for (const [path, status, code] of [
      ["/deny", 403, "E_AUTH_DENIED"],
      ["/slow", 503, "E_AUTH_UNAVAILABLE"],
    ] as const) {
      const h = await harness({
        authorizer: (info) =>
          authorize(info, {
            url: path === "/slow" ? "http://127.0.0.1:1/" : `${base}${path}`,
            timeoutMs: 1_000,
          }),
      });
      const { register } = await setup({}, h);
      const res = await register(h.cert(I1), 1);
      expect(res.status).toBe(status);
      expect(res.json).toEqual(errorOf(code));
      expect(h.store.list()).toEqual([]);
    }
  });

  it("answers 500 with a code and no internals when the handler throws", async () => {
    const h = await harness();
    const server = await RpcServer.start({
      handler: {
        register: () => Promise.reject(new Error("secret detail")),
        info: () => h.service.info(),
      },
      ...serverCert,
      address: "127.0.0.1",
      port: 0,
    });
    cleanups.push(
      () => server.close(),
      () => h.cleanup(),
    );
    const res = await call(server.port, serverCa.certPem, REGISTER, {
      cert: h.cert(I1),
      body: JSON.stringify({ client_public_key: wgKey(1) }),
    });
    expect(res.status).toBe(500);
    expect(res.json).toEqual({ error: "internal error", code: "E_RPC_INTERNAL" });
  });

  it("serves Info without a client certificate", async () => {
    const { post } = await setup();
    const res = await post("/prpc/Gateway.Info?json", { method: "GET" });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      base_domain: "app.test.example",
      external_port: 443,
      app_address_ns_prefix: "_dstack-app-address",
      version: "0.1.0-test",
    });
  });

  it("answers GET /health as dstack does: 200, text/plain, OK, no client certificate", async () => {
    const { post } = await setup();
    const res = await post("/health", { method: "GET" });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(res.body).toBe("OK");
    const head = await post("/health", { method: "HEAD" });
    expect([head.status, head.body]).toEqual([200, ""]);
    expect((await post("/health", { method: "POST" })).status).toBe(405);
  });

  it("recycling frees addresses that new registrations then get", async () => {
    const { h, register } = await setup();
    const t0 = h.clock.now;
    await register(h.cert(I1), 1);
    await register(h.cert(I2), 2);
    h.service.applyHandshakes(new Map([[wgKey(1), t0 + 9 * HOUR]]));
    expect(await h.service.recycle(t0 + 10 * HOUR + 1)).toEqual([I2]);
    h.clock.now = t0 + 10 * HOUR + 2;
    const res = await register(h.cert(I3), 3);
    expect((res.json as { wg: { client_ip: string } }).wg.client_ip).toBe("10.4.0.33");
  });

  it("takes client certificates over 64 KiB on repeated connections (no session tickets)", async () => {
    const { h, post } = await setup();
    const cert = issueRaTlsCert(h.appCa, {
      appInfo: appInfoSpec(APP, I1),
      more: [raTlsExt("1.3.6.1.4.1.62397.1.2", Buffer.alloc(70 * 1024, 0x20))],
    });
    expect(cert.der.length).toBeGreaterThan(64 * 1024);
    const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
    try {
      for (let k = 0; k < 3; k++) {
        const res = await post(REGISTER, {
          cert,
          chain: [h.appCa],
          agent,
          body: JSON.stringify({ client_public_key: wgKey(1) }),
        });
        expect(res.status).toBe(200);
      }
    } finally {
      agent.destroy();
    }
  });

  it("leaves no descriptors behind, and close() ends open connections", async () => {
    const { h, server, register } = await setup();
    const before = openFdCount();
    for (let k = 0; k < 20; k++) await register(h.cert(I1), 1);
    expect(await waitForFds(before, 3, 2_000)).toBeLessThanOrEqual(before + 3);
    const idle = await rawTls(server.port, serverCa.certPem, h.cert(I1));
    const closed = new Promise((resolve) => idle.once("close", resolve));
    await server.close();
    await closed;
    cleanups.splice(0, 1); // already closed
  });
});
