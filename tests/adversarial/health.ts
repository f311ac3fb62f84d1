/**
 * What "the gateway is still fine" means after each part of the suite: its data plane runs
 * (with HAProxy: the gateway, HAProxy's master and its workers, none restarted) and logged no
 * error, a good request through the proxy is served within a bound, and the file descriptors
 * and resident memory of each of those processes are back near what they were before the part.
 */
import { expect } from "vitest";
import { openFdCount, waitForFds } from "../helpers/fds.js";
import { until } from "../../testkit/poll.js";
import { rssKiB, type TestGateway } from "./gateway.js";
import { corpus, records } from "./hello.js";
import { pool, runRaw } from "./raw.js";
import { proxyRequest } from "../../testkit/requests.js";
import { recordPart } from "./tally.js";

/** A good request must be answered within this, right after a part (a hang shows as a miss). */
export const GOOD_REQUEST_MS = 5_000;
/** Descriptors the gateway may hold beyond its baseline: `wg show` pipes come and go. */
const FD_SLACK = 12;
/**
 * Resident memory the gateway may keep beyond its baseline. Measured: under repeated rounds of
 * TLS handshakes its RSS grows by ~80 MiB from a fresh start and then stays flat (V8's heap
 * limit and OpenSSL's allocations grow to the load and are kept), hence the warm-up before the
 * baseline. Connections that are never released (30-40 KiB each when idle) exceed this after
 * a few thousand; the ~40,000 connections of the floods exceed it at ~3 KiB each.
 */
const RSS_MARGIN_KIB = 128 * 1024;
/** TLS handshakes of the warm-up. */
const WARM_UP = 1_000;
/** How long descriptors and memory get to come back (sockets close, V8's memory reducer runs). */
const SETTLE_MS = 30_000;

/** One process's figures. */
export interface Measure {
  readonly fds: number;
  readonly rssKiB: number;
}

/** Per data-plane process (gateway.ts `processes`), by its name. */
export type Baseline = ReadonlyMap<string, Measure & { readonly pid: number }>;

/** The good request: `GET /` through the terminating path, answered by the instance. */
export async function goodRequest(gw: TestGateway, timeoutMs = GOOD_REQUEST_MS): Promise<void> {
  const answer = await proxyRequest(gw.proxyPort, gw.terminateName, gw.proxyCa, timeoutMs);
  expect(answer).toEqual({ status: 200, text: "ok /" });
}

/**
 * Waits until the instance is reachable, warms the data plane up (heaps and pools grow to the
 * load; see RSS_MARGIN_KIB) and measures each of its processes. The warm-up must give back its
 * own descriptors, or a leak would hide in the baseline.
 */
export async function baseline(gw: TestGateway): Promise<Baseline> {
  await until("the instance to be healthy", () => goodRequest(gw, 2_000).then(() => true), 20_000, {
    context: gw.log,
  });
  for (let i = 0; i < 20; i++) await goodRequest(gw);
  await new Promise((r) => setTimeout(r, 500));
  const processes = gw.processes();
  const cold = new Map(processes.map((p) => [p.name, openFdCount(p.pid)]));
  const hellos = corpus(gw.terminateName).map((h) => records(h.message, h.fragment));
  const handshakes = Array.from({ length: WARM_UP }, (_, i) => hellos[i % hellos.length] as Buffer);
  await pool(handshakes, 32, (hello) =>
    runRaw(gw.proxyPort, { segments: [hello], end: false, until: "server-hello" }, 10_000),
  );
  const base = new Map<string, Measure & { pid: number }>();
  for (const { name, pid } of processes) {
    const before = cold.get(name) ?? 0;
    const fds = await waitForFds(before, FD_SLACK, SETTLE_MS, pid);
    expect(fds, `${name} descriptors after the warm-up`).toBeLessThanOrEqual(before + FD_SLACK);
    base.set(name, { pid, fds, rssKiB: rssKiB(pid) });
  }
  return base;
}

/** Waits for `pid`'s descriptors and memory to come back near `base`; the last figures. */
async function settle(pid: number, base: Measure): Promise<Measure> {
  const fds = await waitForFds(base.fds, FD_SLACK, SETTLE_MS, pid);
  const settled = performance.now() + SETTLE_MS;
  while (rssKiB(pid) > base.rssKiB + RSS_MARGIN_KIB && performance.now() < settled) {
    await new Promise((r) => setTimeout(r, 250));
  }
  return { fds, rssKiB: rssKiB(pid) };
}

const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

/**
 * Asserts the gateway recovered from `part`, which tried `cases` hostile cases; prints the
 * figures of each data-plane process for the report and adds the part to the suite's summary
 * (tally.ts).
 */
export async function expectRecovered(
  gw: TestGateway,
  base: Baseline,
  part: string,
  cases: number,
): Promise<void> {
  const crashed = () => `${part}: ${gw.changes().join("; ")}\n${gw.log().slice(-4000)}`;
  if (!gw.alive()) recordPart({ part, cases, crashed: true, leaked: false });
  expect(gw.alive(), crashed()).toBe(true);
  const start = performance.now();
  await goodRequest(gw);
  const goodMs = performance.now() - start;
  const now = new Map<string, Measure>();
  for (const [name, b] of base) now.set(name, await settle(b.pid, b));
  const over = (name: string, m: Measure) => {
    const b = base.get(name) as Measure;
    return m.fds > b.fds + FD_SLACK || m.rssKiB > b.rssKiB + RSS_MARGIN_KIB;
  };
  const leaked = [...now].some(([name, m]) => over(name, m));
  recordPart({ part, cases, crashed: !gw.alive(), leaked });
  const figures = [...now].map(([name, m]) => {
    const b = base.get(name) as Measure;
    return `${name} fds ${m.fds} (baseline ${b.fds}), RSS ${mib(m.rssKiB)} (baseline ${mib(b.rssKiB)})`;
  });
  console.log(
    `${part}: good request ${goodMs.toFixed(0)} ms; ${figures.join("; ")}; ` +
      `test process fds ${openFdCount()}`,
  );
  expect(gw.alive(), crashed()).toBe(true);
  for (const [name, m] of now) {
    const b = base.get(name) as Measure;
    expect(m.fds, `${part}: ${name} descriptors`).toBeLessThanOrEqual(b.fds + FD_SLACK);
    expect(m.rssKiB, `${part}: ${name} RSS (KiB)`).toBeLessThanOrEqual(b.rssKiB + RSS_MARGIN_KIB);
  }
  expect(gw.errors(), `${part}: error lines in the gateway's log`).toEqual([]);
}
