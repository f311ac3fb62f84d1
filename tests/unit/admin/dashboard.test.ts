// The dashboard's HTML (escaping, what it shows) and how a browser gets in: the token as the
// Basic password, a Basic challenge, and no request on behalf of another site.
import bcrypt from "bcryptjs";
import { afterEach, describe, expect, it } from "vitest";
import {
  AdminServer,
  type AdminSources,
  resolveAdminAuth,
} from "../../../gateway-runtime/admin/index.js";
import { escapeHtml, renderDashboard } from "../../../gateway-runtime/admin/dashboard.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { RecentErrors, silentLogger } from "../../../gateway-runtime/log/index.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { tempDir } from "../registry/temp.js";
import { writeFile } from "node:fs/promises";
import { adminView, NOW } from "./view.js";

const TOKEN = "dashboard-admin-token";
const HOSTILE = `<script>alert("x")</script><img src=x onerror=alert(1)>`;
const servers: AdminServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

async function start(admin: Record<string, unknown> = { auth_token: TOKEN }) {
  const recentErrors = new RecentErrors();
  recentErrors.write(
    JSON.stringify({
      level: 50,
      time: "2026-11-26T11:59:00.000Z",
      msg: HOSTILE,
      part: "proxy",
      err: { message: HOSTILE, code: "E_X" },
    }),
  );
  const view = adminView({
    instances: [
      ...adminView().instances,
      {
        id: HOSTILE,
        appId: "aa01",
        ip: "10.4.0.9",
        lastHandshakeMs: NOW - 1000,
        outOfRotation: true,
      },
    ],
  });
  const sources: AdminSources = {
    view: async () => view,
    reloadCertificate: async () => {},
    recentErrors,
    version: "9.9.9",
  };
  const raw = withKey(minimalConfig(), "core.admin", admin);
  const server = await AdminServer.start({
    listen: { address: "127.0.10.5", port: 0 },
    auth: await resolveAdminAuth(parseGatewayConfig(raw, "test").core.admin, {}),
    urls: { url: "", bootnode: "" },
    sources,
    log: silentLogger(),
  });
  servers.push(server);
  const base = `http://127.0.10.5:${(server.address() as { port: number }).port}`;
  return (path: string, headers: Record<string, string> = {}, method = "GET") =>
    fetch(`${base}${path}`, { method, headers, signal: AbortSignal.timeout(5000) });
}

describe("the dashboard", () => {
  it("escapes every value from outside", () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe(
      "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
    );
    const html = renderDashboard({
      view: adminView({
        instances: [{ id: HOSTILE, appId: HOSTILE, ip: "10.4.0.2", lastHandshakeMs: 0 }],
      }),
      version: HOSTILE,
      node: HOSTILE,
      nodes: [],
      errors: [{ time: HOSTILE, msg: HOSTILE, err: HOSTILE, part: HOSTILE }],
    });
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<img");
    expect(html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
  });

  it("takes the token as a Basic password, any user, and shows this node, apps, instances, refusals and errors", async () => {
    const call = await start();
    const res = await call("/", { authorization: basic("anyone", TOKEN) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain('<meta http-equiv="refresh" content="10">');
    for (const text of [
      "9.9.9",
      "aa0101",
      "bb0201",
      "10.4.0.3",
      "E_ROUTE_UNKNOWN_APP",
      "out of rotation",
      "E_X: ",
    ]) {
      expect(html).toContain(text);
    }
    expect(html).not.toContain("<script");
    expect(html).not.toMatch(/https?:\/\/(?!admin)/); // nothing fetched from elsewhere
    expect((await call("/index.html", { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await call("/", { authorization: `Bearer ${TOKEN}` }, "POST")).status).toBe(405);
  });

  it("fails closed: a wrong or missing password is a 401 with a Basic challenge", async () => {
    const call = await start();
    for (const headers of [
      {},
      { authorization: basic("admin", `${TOKEN}x`) },
      { authorization: basic(TOKEN, "") },
    ]) {
      const res = await call("/", headers);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe(
        'Basic realm="gateway admin", charset="UTF-8"',
      );
      expect(await res.text()).not.toContain("aa0101");
    }
  });

  it("with htpasswd only, a Basic password is checked against the users, never a token", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = `${dir}/users`;
      await writeFile(file, `alice:${bcrypt.hashSync("op-password", 4)}\n`);
      const call = await start({ htpasswd_file: file });
      expect((await call("/", { authorization: basic("alice", "op-password") })).status).toBe(200);
      expect((await call("/", { authorization: basic("bob", "op-password") })).status).toBe(401);
      expect((await call("/", { authorization: basic("alice", "") })).status).toBe(401);
    } finally {
      await cleanup();
    }
  });

  it("refuses requests a browser makes for another site, before the credentials count", async () => {
    const call = await start();
    const auth = { authorization: basic("admin", TOKEN) };
    for (const headers of [
      { ...auth, "sec-fetch-site": "cross-site" },
      { ...auth, "sec-fetch-site": "same-site" },
      { ...auth, origin: "http://evil.example" },
      { ...auth, origin: "null" },
    ]) {
      const res = await call("/prpc/Admin.Exit", headers, "POST");
      expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([
        403,
        "E_ADMIN_CROSS_SITE",
      ]);
    }
    expect((await call("/", { ...auth, "sec-fetch-site": "none" })).status).toBe(200);
    expect((await call("/", { ...auth, "sec-fetch-site": "same-origin" })).status).toBe(200);
  });
});
