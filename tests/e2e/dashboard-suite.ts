// The admin dashboard of the lab's gateway host in Chromium: reached through an SSH tunnel to
// the admin port (it listens on the host's loopback only), with the region's token the program
// generated, read from the host's config as `gateway admin` reads it. Not a test file:
// lab.test.ts calls dashboardSuite() on the one-host lab.
/// <reference lib="dom" />
import { type ChildProcess, spawn } from "node:child_process";
import { connect } from "node:net";
import { sshOptions } from "../../lab/host.js";
import { afterAll, describe, expect, it } from "vitest";
import { launchChromium } from "../../testkit/browser.js";
import { freePort } from "../../testkit/process.js";
import { ctx, deployKey, eventually, ssh } from "./lab-setup.js";

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });

export function dashboardSuite(): void {
  describe("the admin dashboard of the lab's gateway, in Chromium", () => {
    let tunnel: ChildProcess | undefined;
    afterAll(() => {
      tunnel?.kill("SIGTERM");
    });

    it("renders this node and the lab's instances with the region's token, and refuses without it", async () => {
      const token = (
        await ssh("sed -n 's/^auth_token = \"\\(.*\\)\"$/\\1/p' /etc/gateway/gateway.toml")
      ).out.trim();
      expect(token.length).toBeGreaterThan(20);
      const port = await freePort();
      tunnel = spawn(
        "ssh",
        [
          ...sshOptions(deployKey),
          "-N",
          "-L",
          `127.0.0.1:${port}:127.0.0.1:8001`,
          `root@${ctx.gw}`,
        ],
        { stdio: "ignore" },
      );
      await eventually("the SSH tunnel to the admin port", () => portOpen(port), 15_000);
      const url = `http://127.0.0.1:${port}/`;
      // (Chromium itself turns a 401 without credentials into a navigation error.)
      expect((await fetch(url)).status).toBe(401);
      const browser = await launchChromium();
      try {
        const context = await browser.newContext({
          httpCredentials: { username: "admin", password: token },
        });
        const page = await context.newPage();
        const problems: string[] = [];
        page.on("console", (m) => {
          if (m.type() === "error") problems.push(m.text());
        });
        page.on("pageerror", (e) => problems.push(e.message));
        expect((await page.goto(url))?.status()).toBe(200);
        const ids = await page.$$eval("#instances tbody tr", (trs) =>
          trs.map((tr) => tr.querySelector("td")?.textContent?.trim() ?? ""),
        );
        // The lab's CVMs, and any instance a test before registered without a tunnel.
        expect(ids).toEqual(expect.arrayContaining(ctx.lab.apps[0]?.instanceIds ?? []));
        await page.screenshot({ path: "test-results/lab-dashboard.png", fullPage: true });
        expect(problems).toEqual([]);
      } finally {
        await browser.close();
      }
    }, 90_000);
  });
}
