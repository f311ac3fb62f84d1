/**
 * Proxy worker lifecycle with stand-in worker scripts (the real ProxyWorkers): a worker that
 * keeps dying young is restarted later and later; one that never gets ready is killed.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { ProxyWorkers } from "../../../gateway-runtime/workers/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import { until } from "../../../testkit/poll.js";

const dir = mkdtempSync(join(tmpdir(), "gw-backoff-"));
const script = join(dir, "dies.mjs");
// ready at once, then gone 50 ms later; the first one stays up (start-up must succeed)
writeFileSync(
  script,
  `process.send({ type: "ready" });
   if (process.env.GW_TEST_FIRST !== "1") setTimeout(() => process.exit(3), 50);
   else process.on("disconnect", () => process.exit(0));`,
);
const stuck = join(dir, "stuck.mjs");
// never ready, deaf to SIGTERM: only a SIGKILL ends it
writeFileSync(stuck, `process.on("SIGTERM", () => {}); setInterval(() => {}, 1000);`);
let workers: ProxyWorkers | undefined;

afterAll(async () => {
  await workers?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it("doubles the restart delay while replacements keep dying", async () => {
  process.env.GW_TEST_FIRST = "1";
  const started = await ProxyWorkers.start({
    count: 1,
    configFile: "/unused",
    directory: new MemoryDirectory(),
    log: silentLogger(),
    exec: script,
    execArgv: [],
    restart: { delayMs: 100, capMs: 400, stableMs: 10_000 },
  });
  workers = started;
  process.env.GW_TEST_FIRST = "0"; // replacements inherit this: they die young
  const first = workers.pids()[0];
  expect(first).toBeGreaterThan(0);
  process.kill(first as number, "SIGKILL");
  // 3 restarts take about 1 s here (delays plus each worker's start); a busy machine, longer
  await until("3 restarts", () => started.restarts.length >= 3, 15_000);
  const times = started.restarts;
  const gaps = times.slice(1).map((t, k) => t - (times[k] as number));
  // Delays 100, 200, 400, 400 ms (the cap), each gap adding the dying worker's short life: the
  // second gap alone is longer than a fixed 100 ms delay plus that life on this machine.
  expect(times.length).toBeGreaterThanOrEqual(3);
  expect(gaps[0]).toBeGreaterThanOrEqual(200);
  for (const gap of gaps.slice(1)) expect(gap).toBeGreaterThanOrEqual(400);
  delete process.env.GW_TEST_FIRST;
});

it("kills a worker that does not get ready in time, and says so", async () => {
  const started = Date.now();
  await expect(
    ProxyWorkers.start({
      count: 1,
      configFile: "/unused",
      directory: new MemoryDirectory(),
      log: silentLogger(),
      exec: stuck,
      execArgv: [],
      readyTimeoutMs: 300,
    }),
  ).rejects.toThrow(/not ready after 300 ms/);
  // killed at the deadline, not after the 10 s a SIGTERM-deaf worker costs a normal stop
  expect(Date.now() - started).toBeLessThan(5_000);
});
