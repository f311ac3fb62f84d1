/**
 * Scenario (u): what a hand-over costs on one host (ARCHITECTURE.md "What a deploy does to open
 * connections"), for our gateway. A deploy restarts the gateway while the socket units keep the
 * port, so the claim to check is that clients never see it: no refused or failed connection, a
 * short pause in accepting, and an old generation that drains and then goes away.
 *
 *   npx tsx bench/handover/handover.ts [--quick] [--out FILE] [--entry BUNDLE]
 *     [--proxy-cpus 0] [--client-cpus 1]
 *
 * 1. The accept gap: new TLS connections (full handshakes, one small request each, terminated
 *    and relayed to the bench backend) at a steady rate before, during and after hand-overs,
 *    alternately in the unit's order ("restart": SIGTERM the old main process, wait for it to
 *    exit, start the next on the same sockets, as `systemctl restart` does with KillMode=process)
 *    and the other way round ("start-first", for comparison). A hand-over's window runs from its
 *    first step until the new generation serves and the old main is gone, plus SETTLE_MS;
 *    connections started in it are "during". Reported: connections that failed (any cause),
 *    the longest time between two consecutive completed handshakes overlapping the window (the
 *    client's view of the accept gap), and TCP connect + handshake time during against outside.
 * 2. A draining generation: N long-lived streams on the serving generation, a hand-over in the
 *    unit's order, then /proc samples of the old generation (primary while it lives, workers)
 *    over the drain: RSS at drain start and while draining, CPU while draining; the streams
 *    must keep echoing. Then the client ends them all, and the time until the old generation's
 *    last process exits is measured.
 * The gateway is the bench bundle (`bench/gateway-bench.ts`: the real data plane and proxy
 * workers, on handed-over sockets as `gateway run` serves them) with the unit's node flags,
 * pinned to the proxy core; the sockets are held by `lab/shims/socket-holder.mjs`. Writes
 * bench/results/handover.json (or FILE). `npm run bench -- --only u` runs it.
 * Every process started here is killed at the end, also on failure or a signal.
 */
import { spawnSync } from "node:child_process";
import type { AddressInfo } from "node:net";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { NODE_FLAGS } from "../../host/layout.js";
import { createCa, issueLeaf } from "../../testkit/certs.js";
import { buildBench } from "../lib/build.js";
import { pinSelf } from "../lib/machine.js";
import { freePort, probe } from "../lib/net.js";
import { CLK_TCK, ProcessSet, sleep } from "../lib/procs.js";
import { APP_ID, BASE_DOMAIN, routeNames, startBackend } from "../lib/targets.js";
import { connectLoop, echoServer, openStreams } from "./clients.js";
import { Generations, type HandoverTimes } from "./generations.js";
import {
  type Attempt,
  cpuPercent,
  type GroupSample,
  groupRss,
  inWindow,
  longestGap,
  phaseStats,
  quantile,
  type Window,
} from "./stats.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    entry: { type: "string" },
    "proxy-cpus": { type: "string", default: "0" },
    "client-cpus": { type: "string", default: "1" },
    /** Every connection of the loop and the hand-overs, to look into a figure. */
    timeline: { type: "string" },
  },
});
const quick = args.quick ?? false;
/** New connections a second, and hand-overs of each order. */
const RATE = quick ? 50 : 200;
const HANDOVERS = quick ? 1 : 3;
/** Before the first hand-over, and between (and after) hand-overs. */
const PRE_MS = quick ? 1500 : 4000;
const BETWEEN_MS = quick ? 1500 : 4000;
/** After the new generation serves, connections queued meanwhile are still being answered. */
const SETTLE_MS = 1000;
/** The start of the loop is warm-up, not "outside" the hand-overs. */
const WARMUP_MS = 500;
const STREAMS = quick ? 50 : 200;
const STREAM_BYTES = 64;
const STEADY_MS = quick ? 1000 : 3000;
const DRAIN_MS = quick ? 3000 : 10_000;
const SAMPLE_MS = 250;
const EXIT_TIMEOUT_MS = 15_000;
const DEADLINE_MS = (quick ? 3 : 6) * 60_000;

const r1 = (x: number | undefined): number | null =>
  x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10) / 10;
const mib = (bytes: number): number | null => r1(bytes / 2 ** 20);
const log = (line: string): void => {
  process.stdout.write(`  (u) ${line}\n`);
};

/** The figures of one order's hand-overs: each one's gap, and the connections during them. */
function orderFigures(order: string, handovers: readonly HandoverTimes[], attempts: Attempt[]) {
  const mine = handovers.filter((h) => h.order === order);
  const windows = mine.map(windowOf);
  const accepted = acceptTimes(attempts);
  const gaps = windows.map((w) => longestGap(accepted, w.fromMs, w.toMs).ms);
  const during = phaseStats(attempts.filter((a) => inWindow(a.startMs, windows)));
  return {
    handovers: mine.length,
    oldMainExitMs: mine.map((h) => r1(h.oldMainExitMs)),
    newServesMs: mine.map((h) => r1(h.newReadyMs)),
    longestGapMs: gaps.map(r1),
    during: rounded(during),
  };
}

const windowOf = (h: HandoverTimes): Window => ({
  fromMs: h.startMs,
  toMs: h.startMs + Math.max(h.newReadyMs, h.oldMainExitMs) + SETTLE_MS,
});

const acceptTimes = (attempts: readonly Attempt[]): number[] =>
  attempts.flatMap((a) => (a.ok && a.handshakeMs !== undefined ? [a.startMs + a.handshakeMs] : []));

function rounded(s: ReturnType<typeof phaseStats>) {
  return {
    ...s,
    connectP50Ms: r1(s.connectP50Ms),
    connectP99Ms: r1(s.connectP99Ms),
    connectMaxMs: r1(s.connectMaxMs),
    tcpP99Ms: r1(s.tcpP99Ms),
  };
}

async function main(): Promise<void> {
  pinSelf(args["client-cpus"].split(",").map(Number));
  const ps = new ProcessSet();
  const dir = mkdtempSync(join(tmpdir(), "gw-bench-handover-"));
  const ca = createCa();
  let gens: Generations | undefined;
  const killNow = () => {
    gens?.killAllNow();
    ps.killAllNow();
  };
  process.once("exit", killNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killNow();
      rmSync(dir, { recursive: true, force: true });
      ca.cleanup();
      process.stderr.write(`handover bench: ${signal}, every process stopped\n`);
      process.exit(130);
    });
  }
  const watchdog = setTimeout(() => {
    killNow();
    process.stderr.write(`handover bench: over ${DEADLINE_MS / 60_000} min, stopped\n`);
    process.exit(3);
  }, DEADLINE_MS);
  watchdog.unref();
  const echo = await echoServer();
  // Other tenants of a shared machine show in every figure here: noted with the results.
  const loadAtStart = loadavg()[0] ?? Number.NaN;
  let failed = true;
  try {
    const leaf = issueLeaf(ca, { key: "ec" });
    const entry = args.entry ?? (await buildBench(ROOT)).gateway;
    const proxyCpus = args["proxy-cpus"];
    const clientCpus = args["client-cpus"];
    const backend = await startBackend({
      ps,
      dir,
      certFile: leaf.certFile,
      keyFile: leaf.keyFile,
      proxyCpus,
      clientCpus,
      clientCpuCount: clientCpus.split(",").length,
    });
    const port = await freePort();
    gens = await Generations.start({
      ps,
      dir,
      port,
      cpus: proxyCpus,
      entry,
      nodeFlags: NODE_FLAGS,
      certFile: leaf.certFile,
      keyFile: leaf.keyFile,
      appId: APP_ID,
    });
    const route = { port, servername: routeNames(backend).term };
    const check = await probe(port, route.servername, "/");
    if (!check.status.includes(" 200")) throw new Error(`route check: ${JSON.stringify(check)}`);

    // 1. The accept gap, hand-overs of both orders in turn under a steady connect loop.
    log(`${RATE} new connections/s, ${HANDOVERS} hand-over(s) of each order`);
    const loop = connectLoop(route, RATE);
    const loopStart = performance.now();
    await sleep(PRE_MS);
    const handovers: HandoverTimes[] = [];
    const oldExits: Promise<number | undefined>[] = [];
    for (let k = 0; k < 2 * HANDOVERS; k++) {
      const old = gens.current;
      const oldPids = gens.members(old);
      // Watched from the start: its connections are one request each, so it should be gone
      // soon after its main, maybe before the next generation serves.
      const gone = gens.exited(oldPids, EXIT_TIMEOUT_MS);
      const h = k % 2 === 0 ? await gens.restart() : await gens.startFirst();
      handovers.push(h);
      oldExits.push(gone.then((t) => t && t - h.startMs));
      log(
        `${h.order}: old main gone after ${h.oldMainExitMs.toFixed(0)} ms, new generation serves after ${h.newReadyMs.toFixed(0)} ms`,
      );
      await sleep(BETWEEN_MS);
    }
    await loop.stop();
    const loopEnd = performance.now();
    const oldGoneMs = await Promise.all(oldExits);
    const attempts = loop.attempts.filter((a) => a.startMs >= loopStart + WARMUP_MS);
    const windows = handovers.map(windowOf);
    const outside = attempts.filter((a) => !inWindow(a.startMs, windows));
    // The gaps of normal operation, between the windows, to read the hand-over's against.
    const edges = [loopStart + WARMUP_MS, ...windows.flatMap((w) => [w.fromMs, w.toMs]), loopEnd];
    const accepted = acceptTimes(attempts);
    let outsideGap = 0;
    for (let i = 0; i + 1 < edges.length; i += 2) {
      const from = edges[i] as number;
      const to = edges[i + 1] as number;
      const inner = accepted.filter((t) => t >= from && t <= to);
      const [a, b] = [inner[0], inner.at(-1)];
      if (a !== undefined && b !== undefined && b > a)
        outsideGap = Math.max(outsideGap, longestGap(inner, a, b).ms);
    }
    if (args.timeline !== undefined) {
      const t0 = loopStart;
      const ms = (t: number) => r1(t - t0);
      const timeline = {
        handovers: handovers.map((h) => ({ ...h, startMs: ms(h.startMs) })),
        windows: windows.map((w) => [ms(w.fromMs), ms(w.toMs)]),
        attempts: loop.attempts.map((a) => [
          ms(a.startMs),
          r1(a.tcpMs),
          r1(a.handshakeMs),
          a.error ?? "ok",
        ]),
      };
      writeFileSync(args.timeline, `${JSON.stringify(timeline)}\n`);
    }
    const connectLoopResult = {
      perSecond: RATE,
      settleMs: SETTLE_MS,
      restart: orderFigures("restart", handovers, attempts),
      startFirst: orderFigures("start-first", handovers, attempts),
      outside: { ...rounded(phaseStats(outside)), longestGapMs: r1(outsideGap) },
      all: { attempts: attempts.length, failed: attempts.filter((a) => !a.ok).length },
      oldGenerationGoneMs: oldGoneMs.map((t) => (t === undefined ? null : r1(t))),
    };

    // 2. A draining generation: streams on it, a hand-over, /proc over the drain.
    log(
      `${STREAMS} streams, ${STREAM_BYTES} B a second each, then a hand-over and ${DRAIN_MS / 1000} s of drain`,
    );
    const streams = await openStreams(
      { port, servername: `${APP_ID}-${(echo.address() as AddressInfo).port}.${BASE_DOMAIN}` },
      STREAMS,
      STREAM_BYTES,
    );
    await sleep(STEADY_MS);
    const old = gens.current;
    const oldPids = gens.members(old);
    const atStart = gens.sample(oldPids);
    const primaryRss = atStart.procs.get(old)?.rssBytes ?? 0;
    const receivedBefore = streams.streams.map((s) => s.received);
    const h = await gens.restart();
    const samples: GroupSample[] = [gens.sample(oldPids)];
    while (performance.now() < h.startMs + DRAIN_MS) {
      await sleep(SAMPLE_MS);
      samples.push(gens.sample(oldPids));
    }
    const newSample = gens.sample(gens.members(gens.current));
    const echoed = streams.streams.map((s, k) => s.received - (receivedBefore[k] ?? 0));
    const cut = streams.streams.filter((s) => s.cut).length;
    const lastClosed = await streams.close();
    const gone = await gens.exited(oldPids, EXIT_TIMEOUT_MS);
    const first = samples[0] as GroupSample;
    const last = samples.at(-1) as GroupSample;
    const rss = samples.map(groupRss).sort((a, b) => a - b);
    const drain = {
      streams: STREAMS,
      streamBytesPerSecond: STREAM_BYTES,
      drainMs: r1(last.atMs - h.startMs),
      oldMainExitMs: r1(h.oldMainExitMs),
      newServesMs: r1(h.newReadyMs),
      rssAtDrainStartMiB: {
        total: mib(groupRss(atStart)),
        primary: mib(primaryRss),
        workers: mib(groupRss(atStart) - primaryRss),
      },
      rssWhileDrainingMiB: { median: mib(quantile(rss, 0.5)), max: mib(rss.at(-1) ?? Number.NaN) },
      cpuWhileDrainingPercent: r1(cpuPercent(first, last, CLK_TCK)),
      newGenerationRssMiB: mib(groupRss(newSample)),
      echoedBytesPerStreamWhileDraining: {
        min: Math.min(...echoed),
        median: quantile(
          [...echoed].sort((a, b) => a - b),
          0.5,
        ),
      },
      cutWhileDraining: cut,
      allClosed: lastClosed !== undefined,
      oldGenerationExited: gone !== undefined,
      exitAfterLastCloseMs:
        gone !== undefined && lastClosed !== undefined ? r1(gone - lastClosed) : null,
    };

    const result = {
      date: new Date().toISOString(),
      commit: spawnSync("git", ["rev-parse", "--short=12", "HEAD"], {
        cwd: ROOT,
        encoding: "utf8",
      }).stdout.trim(),
      quick,
      loadAverage1m: { start: r1(loadAtStart), end: r1(loadavg()[0]) },
      setup:
        "bench gateway (real data plane, 1 proxy worker, unit's node flags) on the proxy core; " +
        "sockets held by lab/shims/socket-holder.mjs; client, backend (nginx) and echo server on the client core",
      connectLoop: connectLoopResult,
      drain,
    };
    console.log(JSON.stringify(result, null, 2));
    const out =
      args.out ?? join(ROOT, "bench", "results", quick ? "handover-quick.json" : "handover.json");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nwrote ${out}`);
    failed = false;
  } finally {
    await gens?.killAll();
    echo.close();
    await ps.stopAll();
    ca.cleanup();
    if (failed) process.stderr.write(`handover bench: logs kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `handover bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
