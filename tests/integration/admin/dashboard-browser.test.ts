// playwright-core's types name DOM types (and $$eval's callbacks run in the page).
/// <reference lib="dom" />
/**
 * The dashboard in a real browser: Debian's headless Chromium (playwright-core drives it) loads
 * `/` with the token as Basic credentials, the test reads the instance rows from the DOM, saves
 * a screenshot (test-results/dashboard.png; UPDATE_SCREENSHOT=1 also refreshes the README's
 * docs/dashboard.png), and the page logged no console error. Without chromium this fails: a
 * skipped browser test would look like a passing one.
 */
import { copyFileSync, mkdirSync } from "node:fs";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminServer, resolveAdminAuth } from "../../../gateway-runtime/admin/index.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { RecentErrors, silentLogger } from "../../../gateway-runtime/log/index.js";
import { ProxyStats } from "../../../gateway-runtime/proxy/index.js";
import { snapshotOf } from "../../../gateway-runtime/proxy/stats.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import { launchChromium } from "../../../testkit/browser.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";

const TOKEN = "browser-dashboard-token";
const HOSTILE = `<img src=x onerror=alert(1)>`;
const APP_A = "3763bc34552cf3a27ff71ad5f7a90471562a1a2d";
const APP_B = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";

let browser: Browser;
let server: AdminServer;
let url: string;

beforeAll(async () => {
  const now = Date.now();
  const directory = new MemoryDirectory();
  directory.upsert({
    id: `${APP_A.slice(0, 8)}01`,
    appId: APP_A,
    ip: "10.4.0.2",
    lastHandshakeMs: now - 4_000,
  });
  directory.upsert({
    id: `${APP_A.slice(0, 8)}02`,
    appId: APP_A,
    ip: "10.4.0.3",
    lastHandshakeMs: now - 9_000,
    outOfRotation: true,
  });
  directory.upsert({
    id: `${APP_B.slice(0, 8)}01`,
    appId: APP_B,
    ip: "10.4.0.4",
    lastHandshakeMs: now - 3_600_000,
  });
  directory.upsert({ id: HOSTILE, appId: APP_B, ip: "10.4.0.5", lastHandshakeMs: 0 });
  const stats = new ProxyStats();
  for (let k = 0; k < 5; k++) stats.opened(APP_A);
  stats.closed(APP_A, 12_345, 987_654);
  stats.rejected("E_ROUTE_UNKNOWN_APP");
  stats.rejected("E_ROUTE_NO_HEALTHY", APP_B);
  const recentErrors = new RecentErrors();
  const log = silentLogger();
  recentErrors.write(
    JSON.stringify({
      time: new Date(now - 60_000).toISOString(),
      msg: "certificate renewal failed",
      part: "certs",
      err: { message: "TSIG refused", code: "E_CERT_DNS" },
    }),
  );
  const raw = withKey(minimalConfig(), "core.admin", { auth_token: TOKEN });
  server = await AdminServer.start({
    listen: { address: "127.0.0.1", port: 0 },
    auth: await resolveAdminAuth(parseGatewayConfig(raw, "test").core.admin, {}),
    urls: { url: "", bootnode: "" },
    sources: {
      view: async () => ({
        nowMs: now,
        startedAtMs: now - 3 * 3_600_000,
        baseDomain: "app.test.example",
        healthyHandshakeAgeMs: 300_000,
        proxy: snapshotOf(
          stats,
          { open: new Map([[`${APP_A.slice(0, 8)}01`, 4]]), connectFailures: new Map() },
          { serial: "0A", notAfter: new Date(now + 60 * 86_400_000) },
        ),
        workers: { running: 1, answered: 1 },
        instances: directory.all(),
        certbot: {
          failures: 1,
          nextCheck: new Date(now + 600_000),
          lastRenewal: {
            at: new Date(now - 60_000),
            ok: false,
            error: "TSIG refused",
            code: "E_CERT_DNS",
          },
        },
      }),
      reloadCertificate: async () => {},
      recentErrors,
      version: "0.1.0",
    },
    log,
  });
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe("the dashboard in Chromium", () => {
  it("shows the instance rows, escaped, with no console error", { timeout: 60_000 }, async () => {
    const context = await browser.newContext({
      httpCredentials: { username: "admin", password: TOKEN },
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));
    const response = await page.goto(url);
    expect(response?.status()).toBe(200);
    const rows = await page.$$eval("#instances tbody tr", (trs) =>
      trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent?.trim() ?? "")),
    );
    expect(rows).toHaveLength(4);
    const byId = new Map(rows.map((r) => [r[0], r]));
    expect(byId.get(`${APP_A.slice(0, 8)}01`)?.slice(1, 6)).toEqual([
      APP_A,
      "10.4.0.2",
      "4s ago",
      "healthy",
      "4",
    ]);
    expect(byId.get(`${APP_A.slice(0, 8)}02`)?.[4]).toBe("out of rotation");
    expect(byId.get(`${APP_B.slice(0, 8)}01`)?.[4]).toBe("no recent handshake");
    expect(byId.get(HOSTILE)?.[3]).toBe("never"); // the markup shows as text
    expect(await page.$$("img")).toHaveLength(0);
    expect(await page.textContent("#errors")).toContain("TSIG refused");
    mkdirSync("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/dashboard.png", fullPage: true });
    if (process.env.UPDATE_SCREENSHOT === "1")
      copyFileSync("test-results/dashboard.png", "docs/dashboard.png");
    expect(problems).toEqual([]);
    await context.close();
  });

  it("without credentials the browser gets the 401, not the page", {
    timeout: 30_000,
  }, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Headless Chromium has no prompt to show for the Basic challenge: it ends the load.
    await expect(page.goto(url)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    await context.close();
  });
});
