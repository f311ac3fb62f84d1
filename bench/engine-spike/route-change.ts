/**
 * Engine spike (issue #22), the route-change half: what a route change costs HAProxy (runtime
 * API, no reload; and, to compare, a reload) and nginx (config rewrite + reload), each
 * terminating TLS for SNI names on loopback, while clients use it. The native engine would take
 * every CVM registration and removal as such a change, so the proxy that takes them without
 * cutting connections, without a pause in accepting and without piling up processes is the one
 * to build on.
 *
 *   npx tsx bench/engine-spike/route-change.ts [--streams 200] [--rate 50] [--changes 50]
 *     [--streams-per-change 2] [--period-ms 250] [--cert-every 10]
 *     [--engines haproxy,haproxy-reload,nginx] [--out FILE] [--proxy-cpus 0] [--client-cpus 1]
 *
 * Per engine, in turn (one worker/thread, pinned to the proxy core; the harness, its clients
 * and the backend on the client core):
 * 1. a backend of our own (one port: a request starting "GET " gets "200 ok", anything else is
 *    echoed) and one route `keep.spike.test` to it;
 * 2. `--streams` long-lived TLS streams through that route, each sending 16 bytes a second, and a
 *    connect loop at `--rate` new connections a second (full handshake, one request each:
 *    `bench/handover/clients.ts`);
 * 3. BEFORE_MS without changes, then `--changes` changes one per `--period-ms`, each routing a
 *    new name (`app-<k>.spike.test`) to the backend and dropping the previous one, and timing
 *    until a new connection with the new name gets its answer (the change has taken effect),
 *    then AFTER_MS without changes; after each change, `--streams-per-change` more streams open
 *    (clients keep arriving: with reloads, each generation then keeps a worker for them); with
 *    HAProxy's runtime API, every `--cert-every`th change also replaces the served certificate
 *    (`set ssl cert` + `commit ssl cert`), checked by the serial a new connection gets (with a
 *    reload, a certificate is just another reload);
 * 4. from /proc every SAMPLE_MS: the proxy's CPU (live processes plus the reaped workers), RSS
 *    and process count.
 * Reported per engine: connections failed and streams cut; connect time (TCP + handshake)
 * p50/p99 in the change window and outside it; time to effect; CPU per change (above the
 * no-change rate); RSS growth per change; processes at most and old processes left once the
 * changes end, and how long they stay after the streams close; the group's PSS before and after
 * the changes (RSS summed over forked processes counts their shared pages once each). Writes
 * JSON (`--out`, default bench/results/engine-spike.json) and prints it. Every process and temp
 * dir started here is removed at the end, also on failure, a signal or the overall deadline.
 */
import { createServer, type Server, type Socket } from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { connect as tlsConnect } from "node:tls";
import { createCa, issueLeaf, type LeafCert } from "../../testkit/certs.js";
import { connectLoop, openStreams } from "../handover/clients.js";
import { type Attempt, phaseStats, quantile } from "../handover/stats.js";
import { pinSelf } from "../lib/machine.js";
import { freePort, HOST, probe } from "../lib/net.js";
import { CLK_TCK, groupMembers, groupRssBytes, ProcessSet, sleep } from "../lib/procs.js";
import { SMALL_BODY } from "../lib/targets.js";
import { type Engine, type EngineEnv, startHaproxy, startNginx } from "./engines.js";
import { corePercent, cpuPerChangeUs, groupTicksTotal, type Sample, windowCpu } from "./stats.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const { values: args } = parseArgs({
  options: {
    streams: { type: "string", default: "200" },
    "streams-per-change": { type: "string", default: "2" },
    rate: { type: "string", default: "50" },
    changes: { type: "string", default: "50" },
    "period-ms": { type: "string", default: "250" },
    engines: { type: "string", default: "haproxy,haproxy-reload,nginx" },
    "cert-every": { type: "string", default: "10" },
    out: { type: "string", default: join(ROOT, "bench/results/engine-spike.json") },
    "proxy-cpus": { type: "string", default: "0" },
    "client-cpus": { type: "string", default: "1" },
  },
});
const STREAMS = Number(args.streams);
const STREAMS_PER_CHANGE = Number(args["streams-per-change"]);
const RATE = Number(args.rate);
const CHANGES = Number(args.changes);
const PERIOD_MS = Number(args["period-ms"]);
const CERT_EVERY = Number(args["cert-every"]);
const BEFORE_MS = 8000;
const AFTER_MS = 8000;
/** The change window runs on this long after the last change, for what it left behind. */
const SETTLE_MS = 1000;
const SAMPLE_MS = 100;
const EFFECT_TIMEOUT_MS = 5000;
const LINGER_TIMEOUT_MS = 10_000;
const DEADLINE_MS = 8 * 60_000;
const DOMAIN = "spike.test";
const KEEP = `keep.${DOMAIN}`;
const appName = (k: number): string => `app-${k}.${DOMAIN}`;

const log = (line: string): void => void process.stderr.write(`route-change: ${line}\n`);
const r1 = (x: number): number => Math.round(x * 10) / 10;

/** One port for both kinds of client: "GET " gets the bench's small answer, the rest an echo. */
async function startBackend(): Promise<Server> {
  const head = `HTTP/1.1 200 OK\r\nContent-Length: ${SMALL_BODY.length}\r\nConnection: close`;
  const answer = `${head}\r\n\r\n${SMALL_BODY}`;
  const server = createServer((s: Socket) => {
    s.on("error", () => {});
    s.once("data", (first: Buffer) => {
      if (first.subarray(0, 4).toString("latin1") === "GET ") s.end(answer);
      else {
        s.write(first);
        s.pipe(s);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: HOST, port: 0 }, resolve);
  });
  return server;
}

/** Until a new connection with `name` gets the answer; ms, or NaN after EFFECT_TIMEOUT_MS. */
async function timeToEffect(port: number, name: string, fromMs: number): Promise<number> {
  while (performance.now() - fromMs < EFFECT_TIMEOUT_MS) {
    const ok = await probe(port, name, "/", 1000).then(
      (p) => p.status.includes(" 200"),
      () => false,
    );
    if (ok) return performance.now() - fromMs;
    await sleep(5);
  }
  return Number.NaN;
}

/** /proc samples every SAMPLE_MS, and one at each `take()` (a window's edge). */
function sampler(engine: Engine): { samples: Sample[]; take(): number; stop(): void } {
  const samples: Sample[] = [];
  const take = (): number => {
    const members = groupMembers(engine.proc.pid);
    const atMs = performance.now();
    samples.push({
      atMs,
      ticks: groupTicksTotal(members, engine.proc.pid),
      rssBytes: groupRssBytes(engine.proc.pid),
      procs: members.length,
    });
    return atMs;
  };
  take();
  const timer = setInterval(take, SAMPLE_MS);
  return { samples, take, stop: () => clearInterval(timer) };
}

/**
 * Proportional set size of the group, bytes: forked workers share pages with their master and
 * each other, which a sum of RSS counts once per process.
 */
function groupPssBytes(pgid: number): number {
  let kib = 0;
  for (const m of groupMembers(pgid)) {
    try {
      const text = readFileSync(`/proc/${m.pid}/smaps_rollup`, "utf8");
      kib += Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return kib * 1024;
}

/** The processes a steady proxy has: HAProxy's master and worker, nginx's master and worker. */
const STEADY_PROCS = 2;

/** The serial of the certificate a new connection with `name` gets. */
function servedSerial(port: number, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: HOST, port, servername: name, rejectUnauthorized: false });
    const timer = setTimeout(() => s.destroy(new Error("no handshake in 5 s")), 5000);
    s.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

function startEngine(name: string, env: EngineEnv, routes: Map<string, number>): Promise<Engine> {
  if (name === "haproxy") return startHaproxy(env, routes, "api");
  if (name === "haproxy-reload") return startHaproxy(env, routes, "reload");
  if (name === "nginx") return startNginx(env, routes);
  throw new Error(`unknown engine ${name}`);
}

async function runEngine(name: string, env: EngineEnv, backendPort: number, certs: LeafCert[]) {
  const routes = new Map([[KEEP, backendPort]]);
  const engine = await startEngine(name, env, routes);
  const check = await probe(env.port, KEEP, "/");
  if (!check.status.includes(" 200")) throw new Error(`${name} route check: ${check.status}`);
  const route = { port: env.port, servername: KEEP };
  const streams = await openStreams(route, STREAMS, 16);
  const mon = sampler(engine);
  const loop = connectLoop(route, RATE);
  const t0 = mon.take();
  log(`${name}: ${STREAMS} streams, ${RATE} conn/s, ${BEFORE_MS} ms without changes`);
  await sleep(BEFORE_MS);
  const receivedBefore = streams.streams.map((s) => s.received);
  const pssBefore = groupPssBytes(engine.proc.pid);
  const from = mon.take();
  const effects: number[] = [];
  const applies: number[] = [];
  const certMs: number[] = [];
  const later: Awaited<ReturnType<typeof openStreams>>[] = [];
  for (let k = 0; k < CHANGES; k++) {
    routes.set(appName(k), backendPort);
    const drop = k > 0 ? appName(k - 1) : undefined;
    if (drop) routes.delete(drop);
    const start = performance.now();
    await engine.change(routes, appName(k), drop);
    applies.push(performance.now() - start);
    effects.push(await timeToEffect(env.port, appName(k), start));
    const cert = certs[(certMs.length + 1) % certs.length];
    if (engine.replaceCert && cert && (k + 1) % CERT_EVERY === 0) {
      const at = performance.now();
      await engine.replaceCert(cert.certPem + cert.keyPem);
      certMs.push(performance.now() - at);
      const served = await servedSerial(env.port, KEEP);
      if (served !== cert.serial) throw new Error(`${name}: served ${served}, not ${cert.serial}`);
    }
    if (STREAMS_PER_CHANGE > 0) later.push(await openStreams(route, STREAMS_PER_CHANGE, 16));
    const due = from + (k + 1) * PERIOD_MS;
    if (performance.now() < due) await sleep(due - performance.now());
  }
  const lastChange = performance.now();
  await sleep(SETTLE_MS);
  const to = mon.take();
  const pssAfter = groupPssBytes(engine.proc.pid);
  const leftAfterChanges = (mon.samples.at(-1)?.procs ?? Number.NaN) - STEADY_PROCS;
  const echoing = streams.streams.filter((s, i) => s.received > (receivedBefore[i] ?? 0)).length;
  log(`${name}: ${CHANGES} changes in ${r1(lastChange - from)} ms, ${AFTER_MS} ms after`);
  await sleep(AFTER_MS);
  const end = mon.take();
  await loop.stop();
  const all = [streams, ...later];
  const cut = all.reduce((n, g) => n + g.streams.filter((s) => s.cut).length, 0);
  // The old processes' last connections are the streams: close them, time until they are gone.
  const closed = await Promise.all(all.map((g) => g.close()));
  const closedAt = Math.max(...closed.map((t) => t ?? performance.now()));
  while (
    groupMembers(engine.proc.pid).length > STEADY_PROCS &&
    performance.now() - closedAt < LINGER_TIMEOUT_MS
  )
    await sleep(20);
  const lingerMs = performance.now() - closedAt;
  const leftAtEnd = groupMembers(engine.proc.pid).length - STEADY_PROCS;
  mon.stop();
  await env.ps.stop(engine.proc);

  const s = mon.samples;
  const inChanges = (a: Attempt) => a.startMs >= from && a.startMs < to;
  const during = windowCpu(s, from, to, CLK_TCK);
  const outside = [windowCpu(s, t0, from, CLK_TCK), windowCpu(s, to, end, CLK_TCK)];
  const rssAt = (t: number) => s.filter((x) => x.atMs <= t).at(-1)?.rssBytes ?? Number.NaN;
  const window = s.filter((x) => x.atMs >= from && x.atMs <= to);
  const stat = (xs: number[], q: number) =>
    r1(
      quantile(
        xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b),
        q,
      ),
    );
  const phase = (attempts: Attempt[]) => {
    const p = phaseStats(attempts);
    return { ...p, connectP50Ms: r1(p.connectP50Ms), connectP99Ms: r1(p.connectP99Ms) };
  };
  return {
    engine: name,
    changes: CHANGES,
    changeWindowMs: Math.round(to - from),
    newConnections: {
      duringChanges: phase(loop.attempts.filter(inChanges)),
      outside: phase(loop.attempts.filter((a) => !inChanges(a))),
    },
    streams: {
      opened: STREAMS + later.length * STREAMS_PER_CHANGE,
      cut,
      firstEchoingThroughChanges: echoing,
    },
    applyMs: { p50: stat(applies, 0.5), max: stat(applies, 1) },
    certReplaceMs: certMs.length > 0 ? { count: certMs.length, max: stat(certMs, 1) } : undefined,
    timeToEffectMs: {
      p50: stat(effects, 0.5),
      p99: stat(effects, 0.99),
      never: effects.filter(Number.isNaN).length,
    },
    cpu: {
      perChangeUs: Math.round(cpuPerChangeUs(during, outside, CHANGES)),
      duringPercent: r1(corePercent(during)),
      outsidePercent: r1(
        corePercent({
          cpuUs: outside.reduce((sum, w) => sum + w.cpuUs, 0),
          wallMs: outside.reduce((sum, w) => sum + w.wallMs, 0),
        }),
      ),
    },
    rss: {
      beforeMiB: r1(rssAt(from) / 2 ** 20),
      maxDuringMiB: r1(Math.max(...window.map((x) => x.rssBytes)) / 2 ** 20),
      afterChangesMiB: r1(rssAt(to) / 2 ** 20),
      perChangeKiB: r1((rssAt(to) - rssAt(from)) / 1024 / CHANGES),
      pssBeforeMiB: r1(pssBefore / 2 ** 20),
      pssAfterChangesMiB: r1(pssAfter / 2 ** 20),
    },
    processes: {
      steady: STEADY_PROCS,
      maxDuring: Math.max(...window.map((x) => x.procs)),
      oldLeftAfterChanges: leftAfterChanges,
      oldLeftAfterStreamsClosed: leftAtEnd,
      goneMsAfterStreamsClosed: leftAtEnd > 0 ? Number.NaN : Math.round(lingerMs),
    },
  };
}

async function main(): Promise<void> {
  pinSelf(args["client-cpus"].split(",").map(Number));
  const ps = new ProcessSet();
  const dir = mkdtempSync(join(tmpdir(), "gw-engine-spike-"));
  const ca = createCa();
  const cleanup = () => {
    ps.killAllNow();
    rmSync(dir, { recursive: true, force: true });
    ca.cleanup();
  };
  process.once("exit", cleanup);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.once(signal, () => {
      log(`${signal}: every process stopped`);
      process.exit(130);
    });
  const watchdog = setTimeout(() => {
    log(`over ${DEADLINE_MS / 60_000} min: stopped`);
    process.exit(3);
  }, DEADLINE_MS);
  watchdog.unref();
  const backend = await startBackend();
  try {
    // Two certificates for HAProxy's runtime replacement; changes alternate between them.
    const certs = [issueLeaf(ca, { key: "ec" }), issueLeaf(ca, { key: "ec" })];
    const leaf = certs[0] as LeafCert;
    const results = [];
    for (const name of args.engines.split(",")) {
      const engineDir = mkdtempSync(join(dir, `${name}-`));
      const env = {
        ps,
        dir: engineDir,
        certFile: leaf.certFile,
        keyFile: leaf.keyFile,
        cpus: args["proxy-cpus"],
        port: await freePort(),
      };
      const port = (backend.address() as { port: number }).port;
      results.push(await runEngine(name, env, port, certs));
    }
    const out = { date: new Date().toISOString(), streams: STREAMS, rate: RATE, results };
    writeFileSync(args.out, `${JSON.stringify(out, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    log(`written to ${args.out} (${dirname(args.out)})`);
  } finally {
    await ps.stopAll();
    backend.close();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    log(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
