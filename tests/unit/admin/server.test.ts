import { afterEach, describe, expect, it, vi } from "vitest";
import {
  AdminServer,
  type AdminSources,
  resolveAdminAuth,
} from "../../../gateway-runtime/admin/index.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { type CheckOutcome, CertError } from "../../../gateway-runtime/certs/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { adminView, NOW } from "./view.js";

const ADDRESS = "127.0.10.1";
const servers: AdminServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function start(opts: { token?: string; sources?: Partial<AdminSources> } = {}) {
  const sources: AdminSources = {
    view: async () => adminView(),
    reloadCertificate: vi.fn(async () => {}),
    ...opts.sources,
  };
  const raw = opts.token
    ? withKey(minimalConfig(), "core.admin", { auth_token: opts.token })
    : withKey(minimalConfig(), "core.admin", { insecure_no_auth: true });
  const server = await AdminServer.start({
    listen: { address: ADDRESS, port: 0 },
    auth: await resolveAdminAuth(parseGatewayConfig(raw, "test").core.admin, {}),
    urls: { url: "https://gw1.example:8001", bootnode: "" },
    sources,
    log: silentLogger(),
  });
  servers.push(server);
  const base = `http://${ADDRESS}:${(server.address() as { port: number }).port}`;
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
  return { call, sources };
}

describe("admin API", () => {
  it("serves the metrics in the Prometheus text format", async () => {
    const { call } = await start();
    const res = await call("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(await res.text()).toContain('gateway_connections_total{app="aa01"} 7\n');
  });

  it("answers Admin.Status as dstack does, by GET or POST, with or without the Admin. prefix", async () => {
    const { call } = await start();
    for (const [path, method] of [
      ["/prpc/Admin.Status?json", "GET"],
      ["/prpc/Status", "POST"],
    ] as const) {
      const res = await call(path, { method });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { hosts: unknown[] };
      expect(body).toMatchObject({
        id: 0,
        url: "https://gw1.example:8001",
        bootnode_url: "",
        num_connections: 2,
        nodes: [],
      });
      expect(body.hosts).toContainEqual({
        instance_id: "aa0101",
        ip: "10.4.0.2",
        app_id: "aa01",
        base_domain: "app.test.example",
        latest_handshake: Math.floor((NOW - 5_000) / 1000),
        num_connections: 2,
      });
      expect(body.hosts).toHaveLength(3);
    }
  });

  it("answers GetInfo for an instance id in the query or the JSON body", async () => {
    const { call } = await start();
    const byQuery = await call("/prpc/Admin.GetInfo?id=bb0201");
    expect(await byQuery.json()).toEqual({
      found: true,
      info: {
        instance_id: "bb0201",
        ip: "10.4.0.4",
        app_id: "bb02",
        base_domain: "app.test.example",
        latest_handshake: Math.floor((NOW - 600_000) / 1000),
        num_connections: 0,
      },
    });
    const byBody = await call("/prpc/Admin.GetInfo", { method: "POST", body: '{"id":"nope"}' });
    expect(await byBody.json()).toEqual({ found: false });
    const missing = await call("/prpc/Admin.GetInfo", { method: "POST" });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ code: "E_RPC_BAD_REQUEST" });
    const bad = await call("/prpc/Admin.GetInfo", { method: "POST", body: "{id" });
    expect(await bad.json()).toMatchObject({ code: "E_RPC_BAD_JSON" });
    const big = await call("/prpc/Admin.GetInfo", { method: "POST", body: "x".repeat(5000) });
    expect(big.status).toBe(413);
    expect(big.headers.get("connection")).toBe("close");
  });

  it("reloads the certificate on POST ReloadCert only", async () => {
    const { call, sources } = await start();
    const get = await call("/prpc/Admin.ReloadCert");
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect(sources.reloadCertificate).not.toHaveBeenCalled();
    const post = await call("/prpc/Admin.ReloadCert", { method: "POST" });
    expect(post.status).toBe(200);
    expect(await post.json()).toEqual({});
    expect(sources.reloadCertificate).toHaveBeenCalledTimes(1);
  });

  it("renews on RenewCert and says whether a new certificate came, or why not", async () => {
    const outcomes: CheckOutcome[] = [
      { action: "renewed", reason: "forced" },
      { action: "locked", reason: "forced" },
      {
        action: "rate-limited",
        reason: "forced",
        error: new CertError("E_CERT_RATE_LIMITED", "5 certificates this week"),
      },
      { action: "failed", reason: "forced", error: new CertError("E_CERT_DNS", "TSIG refused") },
    ];
    const renew = vi.fn(async () => outcomes.shift() as CheckOutcome);
    const { call } = await start({ sources: { renewCertificate: renew } });
    const post = () => call("/prpc/Admin.RenewCert", { method: "POST" });
    expect(await (await post()).json()).toEqual({ renewed: true });
    expect(await (await post()).json()).toEqual({ renewed: false });
    const limited = await post();
    expect(limited.status).toBe(429);
    expect(await limited.json()).toEqual({
      code: "E_CERT_RATE_LIMITED",
      error: "5 certificates this week",
    });
    const failed = await post();
    expect(failed.status).toBe(502);
    expect(await failed.json()).toMatchObject({ code: "E_CERT_DNS" });
    expect(renew).toHaveBeenCalledTimes(4);
  });

  it("refuses RenewCert when ACME is off, and unknown paths", async () => {
    const { call } = await start();
    const renew = await call("/prpc/Admin.RenewCert", { method: "POST" });
    expect(renew.status).toBe(409);
    expect(await renew.json()).toMatchObject({ code: "E_ADMIN_CERTBOT_DISABLED" });
    for (const path of [
      "/prpc/Admin.WaveKvStatus",
      "/prpc/Admin.constructor",
      "/prpc/Gateway.RegisterCvm",
      "/metricsx",
    ]) {
      const res = await call(path);
      expect(res.status, path).toBe(404);
      expect(await res.json()).toMatchObject({ code: "E_RPC_UNKNOWN_METHOD" });
    }
    expect((await call("/metrics", { method: "POST" })).status).toBe(405);
  });

  it("answers 500 with a code, and keeps serving, when reading the state fails", async () => {
    let fail = true;
    const { call } = await start({
      sources: {
        view: async () => {
          if (fail) throw new Error("workers gone");
          return adminView();
        },
      },
    });
    const res = await call("/metrics");
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ code: "E_ADMIN_INTERNAL", error: "workers gone" });
    fail = false;
    expect((await call("/metrics")).status).toBe(200);
  });

  describe("with auth_token", () => {
    const TOKEN = "s3cret-admin-token";

    it("takes the token as a Bearer or in X-Admin-Token", async () => {
      const { call } = await start({ token: TOKEN });
      expect(
        (await call("/metrics", { headers: { authorization: `Bearer ${TOKEN}` } })).status,
      ).toBe(200);
      expect((await call("/metrics", { headers: { "x-admin-token": TOKEN } })).status).toBe(200);
    });

    it("refuses a missing or wrong token with 401 before doing anything", async () => {
      const { call, sources } = await start({ token: TOKEN });
      const missing = await call("/prpc/Admin.ReloadCert", { method: "POST" });
      expect(missing.status).toBe(401);
      expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="gateway admin"');
      expect(await missing.json()).toMatchObject({
        code: "E_ADMIN_UNAUTHORIZED",
        error: expect.stringMatching(/missing/),
      });
      for (const headers of [
        { authorization: `Bearer ${TOKEN}x` },
        { authorization: `Basic ${TOKEN}` },
        { "x-admin-token": TOKEN.slice(1) },
      ]) {
        const wrong = await call("/prpc/Admin.ReloadCert", { method: "POST", headers });
        expect(wrong.status).toBe(401);
        expect(JSON.stringify(await wrong.json())).not.toContain(TOKEN);
      }
      expect(sources.reloadCertificate).not.toHaveBeenCalled();
      expect((await call(`/prpc/Admin.Status?token=${TOKEN}`)).status).toBe(401); // not in URLs
    });
  });
});
