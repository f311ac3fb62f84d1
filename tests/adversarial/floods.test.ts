/**
 * Part 3: floods. Thousands of connections that never send a ClientHello, thousands that stop
 * halfway through one, and a burst of short-lived connections. The hello timeout is short
 * here (2 s) so the gateway reaps them fast; each connection must be closed by the gateway
 * within that timeout plus slack, no backend may be dialled, and good requests are served
 * during and after each flood. It runs on both engines; with HAProxy its floods are the same
 * size (the HAProxy run takes ~50 s).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFdCount } from "../helpers/fds.js";
import { startGateway, type TestGateway } from "./gateway.js";
import { type Baseline, baseline, expectRecovered, goodRequest } from "./health.js";
import { corpus, records } from "./hello.js";
import { ENGINES } from "./processes.js";
import { pool, prng, type RawCase, type RawOutcome, runRaw } from "./raw.js";

const HELLO_TIMEOUT_MS = 2_000;
/**
 * The gateway must close a silent or stalled connection within its hello timeout plus this,
 * on both engines. HAProxy holds such a connection for its inspect-delay (the hello timeout)
 * and then refuses it itself (`be_hello_timeout`); it no longer waits the slow path's own
 * hello timeout on top. The slack is for a loaded machine: thousands of connections at once.
 */
const REAP_SLACK_MS = 6_000;
/** A guard on each case, from before its connect: a case this old is a hang. */
const CASE_GUARD_MS = 30_000;
const FLOOD = 5_000;
/**
 * The burst: 1,000 new connections a second for 30 s, as asked. On this 2-core machine it
 * takes about a third of a core on each side and fits the suite's time budget; the achieved
 * rate is printed.
 */
const BURST_RATE = 1_000;
const BURST_SECONDS = 30;
const BURST_IN_FLIGHT = 3_000;

/** The soft and hard limits on open files of process `pid`. */
function fileLimits(pid: number | "self"): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8").match(
    /^Max open files\s+(\d+)\s+(\d+)/m,
  );
  return { soft: Number(line?.[1] ?? 1024), hard: Number(line?.[2] ?? 1024) };
}

/**
 * This process holds one descriptor per flood connection, and the gateway (which inherits its
 * limit) one more. Raises the soft limit to what that needs if the hard limit allows, else
 * shrinks the flood to fit, so the test never fails for want of descriptors.
 */
function fitFlood(): number {
  const need = FLOOD + openFdCount() + 1_000;
  const { soft, hard } = fileLimits("self");
  if (soft >= need) return FLOOD;
  const raised = Math.min(need, hard);
  spawnSync("prlimit", ["--pid", String(process.pid), `--nofile=${raised}:${hard}`]);
  const now = fileLimits("self").soft;
  const fits = Math.min(FLOOD, now - openFdCount() - 1_000);
  if (fits < FLOOD) console.log(`soft fd limit ${now}: the floods use ${fits} connections`);
  return fits;
}

/**
 * The backends' accept counts once they stop moving: the warm-up's last connections can still
 * be arriving at the backends when a part starts, and would count as dials of that part.
 */
async function settledAccepts(
  gw: TestGateway,
): Promise<{ terminate: number; passthrough: number }> {
  let last = JSON.stringify(gw.backends.accepted());
  for (let i = 0; i < 50; i++) {
    await sleep(200);
    const now = JSON.stringify(gw.backends.accepted());
    if (now === last) break;
    last = now;
  }
  return gw.backends.accepted();
}

/** Runs `cases` all at once, a good request in the middle; checks every one was reaped. */
async function expectReaped(gw: TestGateway, cases: readonly RawCase[]): Promise<void> {
  const dialled = await settledAccepts(gw);
  const running = pool(cases, cases.length, (c) => runRaw(gw.proxyPort, c, CASE_GUARD_MS));
  await sleep(500);
  const start = performance.now();
  await goodRequest(gw);
  const goodMs = performance.now() - start;
  const outcomes = await running;
  const late = outcomes.filter((o) => !o.done || !(o.openMs <= HELLO_TIMEOUT_MS + REAP_SLACK_MS));
  const longest = Math.max(...outcomes.map((o) => o.openMs));
  console.log(
    `${cases.length} connections: longest lived ${longest.toFixed(0)} ms; ` +
      `good request during the flood ${goodMs.toFixed(0)} ms`,
  );
  expect(late.length, `connections not reaped within ${HELLO_TIMEOUT_MS + REAP_SLACK_MS} ms`).toBe(
    0,
  );
  expect(gw.backends.accepted(), "a backend was dialled").toEqual({
    terminate: dialled.terminate + 1, // the good request
    passthrough: dialled.passthrough,
  });
}

describe.each(ENGINES)("floods, %s engine", (engine) => {
  let gw: TestGateway;
  let base: Baseline;
  let flood = FLOOD;

  beforeAll(async () => {
    flood = fitFlood();
    // On the file store only, unlike the RPC part: this part is the data plane, which routes
    // from the registry's view in memory in cluster mode too (registry/etcd-store.ts: reads
    // come from the view, kept current by a watch); no connection here reads or writes etcd,
    // so a cluster gateway would run the same proxy code again, for this part's run time
    // (~65 s) more.
    gw = await startGateway({ engine, helloTimeout: `${HELLO_TIMEOUT_MS}ms` });
    base = await baseline(gw);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it(`${FLOOD} idle connections that never send a ClientHello are reaped`, {
    timeout: 120_000,
  }, async () => {
    await expectReaped(
      gw,
      Array.from({ length: flood }, () => ({ segments: [], end: false, until: "close" })),
    );
    await expectRecovered(gw, base, `idle flood, ${engine} engine`, flood);
  });

  it(`${FLOOD} connections that stop mid-ClientHello are reaped`, {
    timeout: 120_000,
  }, async () => {
    const rand = prng(3);
    const hellos = [gw.terminateName, gw.passthroughName].flatMap((name) =>
      corpus(name).map((h) => records(h.message, h.fragment)),
    );
    const cases = Array.from({ length: flood }, (_, i): RawCase => {
      const hello = hellos[i % hellos.length] as Buffer;
      return {
        segments: [hello.subarray(0, 1 + rand(hello.length - 1))],
        end: false,
        until: "close",
      };
    });
    await expectReaped(gw, cases);
    await expectRecovered(gw, base, `mid-handshake flood, ${engine} engine`, flood);
  });

  it(`a burst of ${BURST_RATE} new connections a second for ${BURST_SECONDS} s`, {
    timeout: (BURST_SECONDS + 90) * 1000,
  }, async () => {
    const hello = records(corpus(gw.terminateName)[0]?.message ?? Buffer.alloc(0), 16384);
    const from = (i: number) => `127.0.0.${2 + (i % 16)}`;
    // Garbage, a hello cut short then closed, a bare close: the gateway closes each at once.
    const kinds: ((i: number) => RawCase)[] = [
      (i) => ({ segments: [Buffer.from([0])], end: false, until: "close", from: from(i) }),
      (i) => ({ segments: [hello.subarray(0, 100)], end: true, until: "close", from: from(i) }),
      (i) => ({ segments: [], end: true, until: "close", from: from(i) }),
    ];
    // A client that resets its connection right after the first bytes.
    const abort = (i: number) =>
      new Promise<RawOutcome>((resolve) => {
        const s = connect({ port: gw.proxyPort, host: "127.0.0.1", localAddress: from(i) });
        s.on("error", () => undefined);
        s.on("connect", () => {
          s.write(hello.subarray(0, 50));
          s.resetAndDestroy();
          resolve({ done: true, ms: 0, openMs: 0, head: Buffer.alloc(0) });
        });
      });
    const dialled = gw.backends.accepted();
    const total = BURST_RATE * BURST_SECONDS;
    const pending = new Set<Promise<RawOutcome>>();
    const outcomes: RawOutcome[] = [];
    const goods: Promise<number>[] = [];
    const start = performance.now();
    let launched = 0;
    let nextGood = start + 5_000;
    while (launched < total) {
      const due = Math.min(total, Math.floor(((performance.now() - start) * BURST_RATE) / 1000));
      while (launched < due && pending.size < BURST_IN_FLIGHT) {
        const i = launched++;
        const kind = kinds[i % 4];
        const p = kind ? runRaw(gw.proxyPort, kind(i), CASE_GUARD_MS) : abort(i);
        pending.add(p);
        void p.then((o) => {
          pending.delete(p);
          outcomes.push(o);
        });
      }
      if (performance.now() >= nextGood) {
        nextGood += 5_000;
        const t = performance.now();
        goods.push(goodRequest(gw).then(() => performance.now() - t));
      }
      await sleep(5);
    }
    const seconds = (performance.now() - start) / 1000;
    await Promise.all(pending);
    const goodMs = await Promise.all(goods);
    const late = outcomes.filter((o) => !o.done || !(o.openMs <= HELLO_TIMEOUT_MS + REAP_SLACK_MS));
    console.log(
      `burst: ${total} connections in ${seconds.toFixed(1)} s (${(total / seconds).toFixed(0)}/s); ` +
        `good requests during it: ${goodMs.map((ms) => ms.toFixed(0)).join(", ")} ms`,
    );
    expect(late.length, "burst connections not closed in time").toBe(0);
    expect(gw.backends.accepted().passthrough).toBe(dialled.passthrough);
    await expectRecovered(gw, base, `connection burst, ${engine} engine`, total);
  });
});
