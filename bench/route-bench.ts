/**
 * Scenario (h): the route lookup alone, SNI → route (`compileRouter`) → instance set
 * (`InstanceSelector.select`, least_conn as configured by default), in one process with no I/O.
 * 1,000 apps with 3 healthy instances each; 4,096 names mixing the label forms (`<app>`,
 * `<app>-<port>`, `<app>s`, `<app>-<port>g`, `<instance>`) so no single shape is all the JIT
 * sees. Prints `{"routeSelect": [ops per CPU second, per run], "routeOnly": [...]}`.
 *
 *   node bench/.build/route-bench.mjs --seconds 1 --runs 3
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { compileRouter } from "../gateway-runtime/proxy/route.js";
import { InstanceSelector } from "../gateway-runtime/proxy/select.js";
import { MemoryDirectory } from "../gateway-runtime/registry/index.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "1" },
    runs: { type: "string", default: "3" },
  },
});
const seconds = Number(values.seconds);
const runs = Number(values.runs);

const BASE = "app.test.example";
const APPS = 1000;
const PER_APP = 3;
const NAMES = 4096;

// Deterministic pseudo-random numbers, so every run looks up the same names.
let seed = 0x2545f491;
const rand = (): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};
const hex = (n: number, width: number): string => n.toString(16).padStart(width, "0");

const directory = new MemoryDirectory();
const now = Date.now();
const appIds: string[] = [];
const instanceIds: string[] = [];
for (let a = 0; a < APPS; a++) {
  const appId = `${hex(a, 8)}${hex(Math.floor(rand() * 2 ** 32), 8)}`;
  appIds.push(appId);
  for (let i = 0; i < PER_APP; i++) {
    const id = `${appId}${hex(i, 4)}`;
    instanceIds.push(id);
    directory.upsert({
      id,
      appId,
      ip: `10.4.${a >> 6}.${((a & 63) << 2) + i + 1}`,
      lastHandshakeMs: now,
    });
  }
}

const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T;
const names: string[] = [];
for (let i = 0; i < NAMES; i++) {
  const app = pick(appIds);
  const form = i % 5;
  names.push(
    form === 0
      ? `${app}.${BASE}`
      : form === 1
        ? `${app}-8080.${BASE}`
        : form === 2
          ? `${app}s.${BASE}`
          : form === 3
            ? `${app}-50051g.${BASE}`
            : `${pick(instanceIds)}.${BASE}`,
  );
}

const route = compileRouter({ baseDomain: BASE });
const selector = new InstanceSelector(directory, {
  topN: 3,
  cacheMs: 30_000,
  healthyAgeMs: 300_000,
  balance: "least_conn",
});

let sink = 0;
function routeSelect(n: number, offset: number): void {
  for (let i = 0; i < n; i++) {
    const r = route(names[(offset + i) & (NAMES - 1)] as string);
    if (r.kind !== "app") throw new Error("expected an app route");
    const s = selector.select(r.id, "192.0.2.7");
    if (s.kind === "ok") sink += s.candidates.length;
  }
}
function routeOnly(n: number, offset: number): void {
  for (let i = 0; i < n; i++) {
    const r = route(names[(offset + i) & (NAMES - 1)] as string);
    if (r.kind === "app") sink += r.port;
  }
}

/**
 * Operations per CPU second over about `secs` of wall time, in batches of 20,000. CPU time, not
 * wall time: on a shared machine a preempted benchmark would otherwise count the other
 * tenant's time as ours.
 */
function rate(fn: (n: number, offset: number) => void, secs: number): number {
  const batch = 20_000;
  let ops = 0;
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  while (performance.now() - start < secs * 1000) {
    fn(batch, ops);
    ops += batch;
  }
  const cpu = process.cpuUsage(cpu0);
  return (ops / (cpu.user + cpu.system)) * 1e6;
}

rate(routeSelect, Math.min(0.5, seconds)); // warm-up: JIT and the selector's cache
rate(routeOnly, Math.min(0.5, seconds));
const result = { routeSelect: [] as number[], routeOnly: [] as number[] };
for (let r = 0; r < runs; r++) {
  result.routeSelect.push(rate(routeSelect, seconds));
  result.routeOnly.push(rate(routeOnly, seconds));
}
process.stdout.write(`${JSON.stringify({ ...result, sink: sink > 0 })}\n`);
