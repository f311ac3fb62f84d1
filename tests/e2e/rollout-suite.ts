// Rollouts that drop nothing, on the lab's gateway host: a changed bundle and a changed config
// go out through `npm run lab -- up` (the program's copy, config and restart steps) while 200
// long-lived streams stay open and new connections arrive at a steady rate; then the main
// process is killed under the same load. Not a test file: lab.test.ts calls rolloutSuite() on
// the one-host lab (the region's gated rollout is in region-suite.ts).
import { createHash } from "node:crypto";
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  addressOf,
  ctx,
  curlVia,
  deployKey,
  eventually,
  lab$,
  ROOT,
  ssh,
  sshTo,
} from "./lab-setup.js";
import type { LabEngine } from "./route-suite.js";
import { startTraffic, type Traffic, type TrafficReport } from "./traffic.js";

/** 150 + 40 + 10 long-lived streams, and 10 new connections a second. */
const LOAD = { websockets: 150, passthrough: 40, ssh: 10, newPerSecond: 10 } as const;

const load = (): Promise<Traffic> =>
  startTraffic({
    via: ctx.gw,
    app: ctx.app,
    baseDomain: ctx.lab.baseDomain,
    caFile: ctx.lab.caFile,
    cvmCaFile: ctx.lab.cvmCaFile,
    sshKey: deployKey,
    ...LOAD,
  });

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const shipped = async () =>
  (await ssh("sha256sum /opt/gateway/gateway.mjs")).out.split(" ")[0] ?? "";
const mainPid = async () =>
  (await ssh("systemctl show -p MainPID --value gateway.service")).out.trim();

/**
 * A copy of the built bundle that differs from it by a comment: a new build to ship. `first`
 * goes before the bundle's code (a module's imports are still evaluated first).
 */
export function changedBundle(name: string, first = ""): string {
  const dir = join(ROOT, ".lab", "builds");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, first);
  appendFileSync(file, readFileSync(join(ROOT, "dist", "gateway.mjs")));
  appendFileSync(
    file,
    `\n// ${name}, built for the rollout tests at ${new Date().toISOString()}\n`,
  );
  return file;
}

/** Nothing cut, nothing corrupted, every new connection served. */
function expectNothingLost(report: TrafficReport): void {
  expect(report.streams).toBe(200);
  expect(report.cut).toEqual([]);
  expect(report.corrupted).toEqual([]);
  expect(report.bytesEchoed).toBe(report.bytesSent);
  expect(report.fresh.filter((c) => c.error !== undefined)).toEqual([]);
}

export function rolloutSuite(engine: LabEngine): void {
  describe(`rollouts that drop nothing (one host, the ${engine} engine)`, () => {
    it("a changed bundle, then a changed config, roll out under 200 open streams and 10 new connections a second: nothing refused, cut or corrupted", async () => {
      const bundle = changedBundle("changed");
      const traffic = await load();
      let report: TrafficReport | undefined;
      try {
        const first = await mainPid();
        const up = await lab$("up", "--set", `gateway:bundle=${bundle}`);
        expect(up.code, up.err).toBe(0);
        expect(up.out).toMatch(/replace \S* +lab-gw1-bundle/);
        expect(await shipped()).toBe(sha256(bundle));
        const second = await mainPid();
        expect(second).not.toBe(first);
        const config = await lab$(
          "up",
          ...["--set", `gateway:bundle=${bundle}`],
          ...["--set", "gateway:config.core.proxy.timeouts.idle=9m"],
        );
        expect(config.code, config.err).toBe(0);
        expect(config.out).toMatch(/replace \S* +lab-gw1-config/);
        expect(await mainPid()).not.toBe(second);
        // The generations before keep relaying their streams while the new one serves.
        await new Promise((r) => setTimeout(r, 3000));
      } finally {
        report = await traffic.stop();
      }
      expectNothingLost(report);
      expect(report.fresh.length).toBeGreaterThan(100);
    }, 600_000);

    it("the main process killed (SIGKILL) under the same load: the streams live on, new connections are served again within 2 s", async () => {
      const traffic = await load();
      let report: TrafficReport | undefined;
      let killedAt = 0;
      try {
        const before = await mainPid();
        await new Promise((r) => setTimeout(r, 2000));
        killedAt = Date.now();
        await ssh(`kill -KILL ${before}`);
        await eventually("a new main process", async () => {
          const now = await mainPid();
          return now !== "" && now !== "0" && now !== before;
        });
        await new Promise((r) => setTimeout(r, 5000));
      } finally {
        report = await traffic.stop();
      }
      expectNothingLost(report);
      const after = report.fresh.filter((c) => c.startedAt >= killedAt);
      expect(after.length).toBeGreaterThan(30);
      const slowest = Math.max(...after.map((c) => c.endedAt - c.startedAt));
      expect(slowest, "the longest wait of a new connection after the kill").toBeLessThan(2000);
    }, 300_000);

    it("rolling back is an up of what was there before: the package's own bundle and the stack's config", async () => {
      const back = await lab$("up");
      expect(back.code, back.err).toBe(0);
      expect(back.out).toMatch(/replace \S* +lab-gw1-bundle/);
      expect(back.out).toMatch(/replace \S* +lab-gw1-config/);
      expect(await shipped()).toBe(sha256(join(ROOT, "dist", "gateway.mjs")));
    }, 300_000);
  });
}

/**
 * On the lab grown to three hosts (after regionSuite()): a build that dies at start stops the
 * host-by-host rollout at the first host, the others keep the version they had and serve, and
 * an up of what was there before brings the first back.
 */
export function regionRolloutSuite(engine: LabEngine): void {
  describe(`a region's rollout stopped by a broken build (the ${engine} engine)`, () => {
    const hosts = () => ctx.lab.gateways.map(addressOf);
    const shippedOn = async (address: string) =>
      (await sshTo(address, "sha256sum /opt/gateway/gateway.mjs")).out.split(" ")[0] ?? "";
    const routes = async (address: string) =>
      /^c[12]\S+ 8080 GET/.test((await curlVia(address, `${ctx.app}-8080`)).out);

    it("fails at the first host's gates, leaves the others on the previous version serving, and rolls back", async () => {
      const good = sha256(join(ROOT, "dist", "gateway.mjs"));
      for (const address of hosts()) expect(await shippedOn(address)).toBe(good);
      // It dies at start before any of its own code runs, primary and workers alike.
      const broken = changedBundle("broken", 'throw new Error("a deliberately broken build");\n');
      const r = await lab$("up", "--set", `gateway:bundle=${broken}`);
      expect(r.code).not.toBe(0);
      const out = `${r.out}\n${r.err}`;
      expect(out).toContain("rollout: gw1 drained");
      expect(out).toMatch(/lab-gw1-restart[\s\S]*did not serve/);
      expect(out).not.toContain("rollout: gw2 drained");
      const [first, ...rest] = hosts();
      expect(await shippedOn(first ?? "")).toBe(sha256(broken));
      for (const address of rest) {
        expect(await shippedOn(address)).toBe(good);
        expect(await routes(address), `${address} routes`).toBe(true);
      }
      const back = await lab$("up");
      expect(back.code, `${back.out}\n${back.err}`).toBe(0);
      expect(back.out).toContain("rollout: gw1 passed its gates and is back in the region");
      expect(await shippedOn(first ?? "")).toBe(good);
      await eventually("gw1 to route again", () => routes(first ?? ""));
    }, 600_000);
  });
}
