/**
 * Scenario (s), the soak: our gateway as a host runs it (gateway.ts: the bundle, socket
 * activation, a primary and its proxy workers, WireGuard) under mixed traffic (traffic.ts) for
 * `--minutes` while registrations churn over its RPC port (churn.ts); every process of it
 * sampled from /proc (sampler.ts). It answers one question: does anything grow with time, that
 * is, leak? Per process: RSS after the warm-up and at the end, its slope (stats.ts), and open
 * descriptors before the load and after it (plus a settle), where a leak of sockets, timers'
 * handles or files would show.
 *
 *   npx tsx bench/soak/soak.ts [--minutes 30] [--out FILE] [--gateway-flags="FLAGS"] [--keep]
 *
 * `--gateway-flags` replaces the unit's node flags for the gateway (a look at a finding, e.g.
 * with `--trace-gc` added: V8's GC lines land in the gateway's log); `--keep` keeps the logs.
 * Prints progress every minute and the summary; writes bench/results/soak.json (or FILE). Needs
 * root, wireguard-go, wg, ip, setpriv and nginx. `npm run bench` runs it as scenario (s). Every
 * process started here is stopped at the end, also on failure or a signal.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { NODE_FLAGS } from "../../host/layout.js";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import { createCa, issueLeaf } from "../../testkit/certs.js";
import { until } from "../../testkit/poll.js";
import { buildSoak } from "../lib/build.js";
import { probe } from "../lib/net.js";
import { ProcessSet, sleep } from "../lib/procs.js";
import { BASE_DOMAIN, type Env, startBackend } from "../lib/targets.js";
import { fleet } from "../registration/common.js";
import { Churn } from "./churn.js";
import { type SoakGateway, startSoakGateway, waitForHandshake } from "./gateway.js";
import { CHURN, GATEWAY, MIX, phases, SOAK_MINUTES } from "./plan.js";
import { Sampler } from "./sampler.js";
import { type KindTotals, resultJson, type SoakResult, soakLines, summarize } from "./stats.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: String(SOAK_MINUTES) },
    out: { type: "string" },
    "gateway-flags": { type: "string" },
    keep: { type: "boolean", default: false },
  },
});
const gatewayFlags = values["gateway-flags"]?.split(" ").filter((f) => f !== "") ?? [...NODE_FLAGS];
const minutes = Number(values.minutes);
if (!(minutes > 0)) throw new Error("--minutes must be a positive number");
const out = values.out ?? join(ROOT, "bench", "results", "soak.json");

const startedAt = performance.now();
const progress = (line: string): void => {
  const min = (performance.now() - startedAt) / 60_000;
  process.stdout.write(`  (s) [${min.toFixed(1).padStart(5)} min] ${line}\n`);
};
let signalled: NodeJS.Signals | undefined;
let wakeOnSignal: () => void = () => {};
const onSignal = new Promise<void>((resolve) => {
  wakeOnSignal = resolve;
});
/** Sleeps `ms`, or less when a signal came. */
const nap = (ms: number) => Promise.race([sleep(ms), onSignal]);

/** The lines `traffic.ts` prints: `SOAK_TRAFFIC{,_FINAL} {json}`, the latest of each. */
function trafficLines(stdout: NodeJS.ReadableStream) {
  const latest: { progress?: Record<string, KindTotals>; final?: Record<string, KindTotals> } = {};
  let buffer = "";
  stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    for (let nl = buffer.indexOf("\n"); nl !== -1; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const m = /^SOAK_TRAFFIC(_FINAL)? (.*)$/.exec(line);
      if (m) latest[m[1] ? "final" : "progress"] = JSON.parse(m[2] ?? "{}");
    }
  });
  return latest;
}

/** Recycled instances and error lines, from the gateway's JSON log. */
function readLog(file: string): { recycled: number; errors: number; samples: string[] } {
  let recycled = 0;
  let errors = 0;
  const samples: string[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { level?: number; msg?: string; instances?: unknown[] };
    if (/^recycled \d+ stale instances$/.test(entry.msg ?? "")) {
      recycled += entry.instances?.length ?? 0;
    }
    if ((entry.level ?? 0) >= 50) {
      errors += 1;
      if (samples.length < 5) samples.push(line.slice(0, 300));
    }
  }
  return { recycled, errors, samples };
}

async function main(): Promise<number> {
  const ps = new ProcessSet();
  const dir = mkdtempSync(join(tmpdir(), "gw-soak-"));
  chmodSync(dir, 0o755); // nginx workers run as nobody and read the 1 MiB file from here
  const ca = createCa();
  let gw: SoakGateway | undefined;
  /** Stopped in `finally` as well: after a signal they would keep the process alive. */
  let sampling: Sampler | undefined;
  let churning: Churn | undefined;
  process.once("exit", () => {
    gw?.killNow();
    ps.killAllNow();
  });
  let failed = true;
  try {
    const { warmupMs, sampleEveryMs, settleMs } = phases(minutes);
    const leaf = issueLeaf(ca, { key: "ec" });
    const built = await buildSoak(ROOT);
    gw = await startSoakGateway({
      ps,
      dir,
      bundle: built.gateway,
      nodeFlags: gatewayFlags,
      certFile: leaf.certFile,
      keyFile: leaf.keyFile,
    });
    progress(`gateway ${gw.pid} serving on ${gw.proxyPort} with ${GATEWAY.workers} workers`);

    // The traffic's instance: registered like any, its CVM's end of the tunnel handshaking.
    const pool = fleet(Math.ceil((minutes * 60_000) / CHURN.everyMs) + 1, CHURN.apps);
    const keys = generateWgKeyPair();
    const app = pool[0]?.appId ?? "";
    const cvm = { appId: app, instanceId: pool[0]?.instanceId ?? "", publicKey: keys.publicKey };
    const ip = await gw.register(cvm);
    const all = cpus()
      .map((_, k) => k)
      .join(",");
    const env: Env = {
      ...{ ps, dir, certFile: leaf.certFile, keyFile: leaf.keyFile },
      ...{ proxyCpus: all, clientCpus: all, clientCpuCount: 1 },
    };
    const backend = await startBackend(env, { address: ip, h2c: true });
    await gw.connectPeer(keys.privateKey);
    await waitForHandshake(gw, cvm.instanceId);
    const names = {
      term: `${app}-${backend.httpPort}.${BASE_DOMAIN}`,
      pass: `${app}-${backend.tlsPort}s.${BASE_DOMAIN}`,
      h2: `${app}-${backend.h2cPort}g.${BASE_DOMAIN}`,
    };
    for (const name of [names.term, names.pass]) {
      const gwPort = gw.proxyPort;
      await until(
        `a request through ${name}`,
        async () => (await probe(gwPort, name, "/")).status.includes(" 200"),
        15_000,
        { everyMs: 500 },
      );
    }

    const sampler = new Sampler(gw.pid, gw.iface, startedAt);
    sampling = sampler;
    await until("every proxy worker", () => sampler.workers().length === GATEWAY.workers, 10_000);
    const loadAverageStart = loadavg()[0] ?? Number.NaN;
    sampler.sample(); // before the load
    const loadStartMs = performance.now() - startedAt;
    const traffic = ps.spawn(
      "soak-traffic",
      "setpriv",
      [
        ...["--pdeathsig", "TERM", process.execPath, built.traffic],
        ...["--port", String(gw.proxyPort), "--ca", ca.certFile, "--seconds", String(minutes * 60)],
        ...["--term", names.term, "--pass", names.pass, "--h2", names.h2],
      ],
      { stdout: "pipe", logDir: dir },
    );
    const counts = trafficLines(traffic.child.stdout as NodeJS.ReadableStream);
    const churn = new Churn(gw, pool.slice(1));
    churning = churn;
    churn.start();
    sampler.start(sampleEveryMs);
    progress(`load for ${minutes} min (warm-up ${warmupMs / 60_000} min)`);

    const endMs = loadStartMs + minutes * 60_000;
    let nextReport = loadStartMs + 60_000;
    while (performance.now() - startedAt < endMs && !signalled) {
      await nap(1000);
      if (!gw.alive()) throw new Error(`the gateway died; see ${gw.logFile}`);
      if (traffic.child.exitCode !== null)
        throw new Error(`the traffic client died; see ${traffic.logFile}`);
      if (performance.now() - startedAt >= nextReport) {
        nextReport += 60_000;
        // A soak whose traffic has nowhere to go measures nothing: stop, and say why.
        const hosts = (await gw.status()).hosts;
        if (!hosts.some((h) => h.instance_id === cvm.instanceId)) {
          throw new Error("the traffic's instance is no longer registered (recycled?)");
        }
        const now = sampler
          .series()
          .map(
            (s) =>
              `${s.role} ${((s.samples.at(-1)?.rssKiB ?? 0) / 1024).toFixed(1)} MiB ${s.samples.at(-1)?.fds} fds`,
          );
        const t = Object.values(counts.progress ?? {});
        const c = churn.totals();
        progress(
          `${now.join(", ")}; ${t.reduce((n, k) => n + k.requests, 0)} requests, ${t.reduce((n, k) => n + k.errors, 0)} errors; ${c.registered + c.reregistered} registrations`,
        );
      }
    }
    if (signalled) return 130;

    const loadEndMs = performance.now() - startedAt;
    await churn.stop();
    process.kill(traffic.pid, "SIGTERM");
    await Promise.race([traffic.exited, sleep(30_000)]);
    sampler.stop();
    const final = counts.final;
    if (!final) throw new Error(`the traffic client gave no counts; see ${traffic.logFile}`);
    progress(`load stopped; settling for ${settleMs / 1000} s`);
    await nap(settleMs);
    if (signalled) return 130;
    sampler.sample(); // after the settle
    const status = await gw.status();
    const log = readLog(gw.logFile);

    const series = sampler.series();
    const timeline = { loadStartMs, warmEndMs: loadStartMs + warmupMs, loadEndMs };
    const processes = series.flatMap((s) => summarize(s, timeline) ?? []);
    const workerPids = series.filter((s) => s.role === "worker").length;
    const git = (args: string[]) =>
      spawnSync("git", args, { cwd: ROOT, encoding: "utf8" }).stdout.trim();
    const result: SoakResult = {
      date: new Date().toISOString(),
      minutes,
      warmupMinutes: warmupMs / 60_000,
      sampleEverySeconds: sampleEveryMs / 1000,
      settleSeconds: settleMs / 1000,
      setup: {
        commit: `${git(["rev-parse", "--short=12", "HEAD"])}${git(["status", "--porcelain", "--untracked-files=no"]) ? " (modified)" : ""}`,
        node: `${process.version} ${gatewayFlags.join(" ")}`,
        gateway: `gateway run, sockets handed over, ${GATEWAY.workers} proxy workers`,
        settings: GATEWAY,
        mix: MIX,
        churn: CHURN,
      },
      machine: {
        cpus: cpus().length,
        loadAverageStart,
        loadAverageEnd: loadavg()[0] ?? Number.NaN,
      },
      processes,
      workerRestarts: Math.max(0, workerPids - GATEWAY.workers),
      traffic: final,
      churn: churn.totals(),
      recycled: log.recycled,
      end: { registered: status.hosts.length, openConnections: status.open },
      gatewayErrors: log.errors,
      gatewayErrorSamples: log.samples,
      series: series.map((s) => ({
        role: s.role,
        pid: s.pid,
        points: s.samples.map((p): [number, number, number] => [
          Math.round(p.atMs / 1000),
          p.rssKiB,
          p.fds,
        ]),
      })),
    };
    for (const line of soakLines(result)) process.stdout.write(`${line}\n`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, resultJson(result));
    process.stdout.write(`\nwrote ${out}\n`);
    failed = false;
    return 0;
  } finally {
    sampling?.stop();
    await churning?.stop();
    await gw
      ?.stop()
      .catch((e: unknown) => process.stderr.write(`soak: stopping the gateway: ${e}\n`));
    await ps.stopAll();
    ca.cleanup();
    if ((failed && !signalled) || values.keep) process.stdout.write(`soak: logs kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/** How long the stop after a signal may take before this process exits regardless. */
const SIGNAL_STOP_BOUND_MS = 60_000;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    // The first one stops everything in `finally`. Later ones change nothing: a Ctrl-C reaches
    // this process and its parent, whose death sends SIGTERM again (`--pdeathsig`), and that
    // must not cut the stop short; the bound below ends a stop that hangs.
    if (signalled) return;
    signalled = signal;
    process.stderr.write(`\nsoak: ${signal}, stopping every process\n`);
    wakeOnSignal();
    setTimeout(() => process.exit(130), SIGNAL_STOP_BOUND_MS).unref();
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
