/**
 * `npm run bench [-- --quick] [-- --only a,c] [-- --targets haproxy,ours] [-- --runs N --seconds S]
 *   [-- --ours-flags="node flags", default the unit's NODE_FLAGS] [-- --base REV] [-- --base-node PATH]
 *   [-- --instances N] [-- --attempt-delay 250ms] [-- --workers N] [-- --soak-minutes N]
 *   [-- --no-profile] [-- --keep]`
 *
 * Builds the bench gateway bundle, starts the backend and the proxies (HAProxy, nginx, ours,
 * each pinned to core 0; load generators and backend on the other cores), checks every route,
 * runs scenarios (a)-(h), the control plane per engine (i, `bench/registration/engines.ts`),
 * the control plane (r, `bench/registration/scale.ts`), a region (k),
 * a hand-over (u, `bench/handover/handover.ts`) and the soak (s, `bench/soak/soak.ts`, 30
 * minutes unless `--soak-minutes`), and prints the table; with `--base REV`
 * also ours as of commit REV ("base") and the per-round ratio of
 * ours to it (`--base-node PATH`: base runs on that node binary, ours' code unless `--base`
 * says otherwise). Writes `bench/results/latest.{json,svg,md}` and `profile.json` (`quick.*` with
 * --quick, `partial.*` for a subset, other --ours-flags, --base, --instances, --attempt-delay or
 * --workers). `--attempt-delay` and `--workers` apply to ours only, so `--base HEAD` pairs them
 * with the defaults on the same code.
 * BENCHMARKS.md explains method and limits.
 * Every process started here is killed at the end, also on failure or Ctrl-C.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createCa, issueLeaf } from "../testkit/certs.js";
import { buildBaseGateway, buildBench } from "./lib/build.js";
import {
  runControlPlane,
  runEngines,
  runHandover,
  runRegion,
  runRouteBench,
  runSoak,
  stopSoak,
} from "./lib/standalone.js";
import { ratioChart } from "./lib/chart.js";
import { idleScenario } from "./lib/idle.js";
import { type BenchOptions, parseBenchOptions } from "./lib/options.js";
import {
  cpuList,
  type IdlePlan,
  machineInfo,
  nodeVersion,
  openFileLimit,
  pinSelf,
  planIdle,
  preflight,
} from "./lib/machine.js";
import { probe } from "./lib/net.js";
import { ProcessSet } from "./lib/procs.js";
import { profileScenarios } from "./lib/profile-run.js";
import { idleRows, loadRows, pairedRatio, type Row, goals as judge } from "./lib/report.js";
import { LOAD_SCENARIOS, runScenario } from "./lib/scenarios.js";
import { sideBySide } from "./lib/side-by-side.js";
import { proxyStarter } from "./lib/start-proxy.js";
import { goalLines, markdownTable, scenarioLegend, textTable } from "./lib/table.js";
import {
  direct,
  type Env,
  LARGE_BYTES,
  LARGE_PATH,
  PROXIES,
  SMALL_BODY,
  startBackend,
  startHaproxy,
  startNginx,
  type Target,
} from "./lib/targets.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS = join(ROOT, "bench", "results");

let options: BenchOptions;
/** (g)'s count, decided up front: a count that cannot fit fails before anything starts. */
let idlePlan: IdlePlan;
try {
  options = parseBenchOptions(process.argv.slice(2));
  idlePlan = planIdle(openFileLimit(), options);
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(64);
}
const { quick, timing, targetNames, only, instances, workers } = options;
/** Upper bound on the whole bench; the watchdog kills everything past it. */
const DEADLINE_MS = ((quick ? 6 : 90) + (only.has("s") ? options.soakMinutes + 10 : 0)) * 60_000;

/** Temp dirs to remove even when a signal ends the bench. */
const tempDirs: string[] = [];
const started = Date.now();
/** Progress lines carry the elapsed time; the final table does not. */
const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const progress = (line: string): void =>
  log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`);
const round = (x: unknown): unknown =>
  typeof x === "number" ? (Number.isFinite(x) ? Number(x.toPrecision(5)) : null) : x;

async function checkRoutes(targets: readonly Target[]): Promise<void> {
  for (const t of targets) {
    const term = await probe(t.term.port, t.term.sni, "/");
    const pass = await probe(t.pass.port, t.pass.sni, "/");
    const large = await probe(t.pass.port, t.pass.sni, LARGE_PATH);
    const ok =
      term.status.includes(" 200") &&
      term.bodyBytes === SMALL_BODY.length &&
      pass.status.includes(" 200") &&
      large.bodyBytes === LARGE_BYTES;
    if (!ok) {
      throw new Error(`${t.name}: route check failed: ${JSON.stringify({ term, pass, large })}`);
    }
    log(
      `  ${t.name.padEnd(7)} term ${term.protocol} ${term.cipher}; passthrough ${pass.protocol} ok`,
    );
  }
}

async function main(): Promise<number> {
  const cores = preflight(idlePlan.fdsNeeded);
  pinSelf(cores.client);
  const ps = new ProcessSet();
  process.once("exit", () => {
    stopSoak();
    ps.killAllNow();
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      stopSoak();
      ps.killAllNow();
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
      process.stderr.write(`\nbench: ${signal}, every process stopped\n`);
      process.exit(130);
    });
  }
  const watchdog = setTimeout(() => {
    stopSoak();
    ps.killAllNow();
    process.stderr.write(`bench: over ${DEADLINE_MS / 60_000} min, stopped\n`);
    process.exit(3);
  }, DEADLINE_MS);
  watchdog.unref();

  const dir = mkdtempSync(join(tmpdir(), "gw-bench-"));
  chmodSync(dir, 0o755); // nginx workers run as nobody and read the 1 MiB file from here
  const ca = createCa();
  tempDirs.push(dir, ca.dir);
  let failed = true;
  try {
    const machine = machineInfo();
    log(`machine: ${machine.nproc} CPUs, ${machine.cpuModel}, Linux ${machine.kernel}`);
    log(`proxy core ${cpuList(cores.proxy)}, client and backend cores ${cpuList(cores.client)}`);
    for (const [k, v] of Object.entries(machine.versions)) log(`  ${k}: ${v}`);
    if (idlePlan.lowered && only.has("g"))
      log(
        `open-file limit ${idlePlan.fdLimit}: (g) holds ${idlePlan.count} idle connections per target, not ${idlePlan.asked}`,
      );
    const leaf = issueLeaf(ca, { key: "ec" });
    const built = await buildBench(ROOT);
    const base =
      options.base === undefined ? undefined : await buildBaseGateway(ROOT, options.base);
    if (base) log(`base: ours as of ${base.commit} (--base ${options.base})`);
    const baseNodeVersion =
      options.baseNode === undefined ? undefined : nodeVersion(options.baseNode);
    if (baseNodeVersion) log(`base: on ${baseNodeVersion} (--base-node ${options.baseNode})`);
    const env: Env = {
      ps,
      dir,
      certFile: leaf.certFile,
      keyFile: leaf.keyFile,
      proxyCpus: cpuList(cores.proxy),
      clientCpus: cpuList(cores.client),
      clientCpuCount: cores.client.length,
    };
    const loadCtx = {
      ps,
      dir,
      clientCpus: env.clientCpus,
      shim: built.shim,
      luaScript: join(ROOT, "bench", "lib", "wrk-report.lua"),
    };
    const backend = await startBackend(env);
    const rows: Row[] = [];
    const pairedLines: string[] = [];
    const startProxy = proxyStarter(env, backend, built, base, options);

    const loadScenarios = LOAD_SCENARIOS.filter((s) => only.has(s.id));
    if (loadScenarios.length > 0) {
      const targets: Target[] = [];
      if (targetNames.has("direct")) targets.push(direct(backend));
      if (targetNames.has("haproxy")) targets.push(await startHaproxy(env, backend));
      if (targetNames.has("nginx")) targets.push(await startNginx(env, backend));
      for (const name of ["ours", "ours-haproxy", "node", "base"] as const) {
        if (targetNames.has(name)) targets.push(await startProxy(name));
      }
      log("route check:");
      await checkRoutes(targets);
      for (const scenario of loadScenarios) {
        progress(`(${scenario.id}) ${scenario.title}`);
        const samples = await runScenario(loadCtx, cores, scenario, targets, timing, progress);
        rows.push(...loadRows(scenario, samples));
        const paired = pairedRatio(samples.get("ours"), samples.get("base"));
        if (paired) {
          const line = `(${scenario.id}) ours ÷ base, CPU per op, per round: ${paired}`;
          pairedLines.push(line);
          progress(`  ${line}`);
        }
      }
      for (const t of targets) if (t.proc) await ps.stop(t.proc);
    }

    if (only.has("g")) {
      const idleCtx = {
        ps,
        dir,
        clientCpus: env.clientCpus,
        idleClient: built.idleClient,
        groups: options.idleGroups,
      };
      const proxies = PROXIES.filter((p) => targetNames.has(p));
      const run = { proxies, plan: idlePlan, runs: timing.runs, settleMs: quick ? 1000 : 3000 };
      rows.push(
        ...idleRows(await idleScenario(idleCtx, run, startProxy, progress), idlePlan.count),
      );
    }

    if (only.has("h")) {
      progress("(h) route lookup alone");
      rows.push(runRouteBench(env.proxyCpus, built.routeBench, quick, timing.runs));
    }

    const engines = only.has("i") ? runEngines(ROOT, RESULTS, quick, progress) : undefined;
    rows.push(...(engines?.rows ?? []));
    // The scenarios that run as processes of their own: a titled list of summary lines each.
    const standalone = [
      { title: "the control plane per engine (i)", lines: engines?.lines ?? [] },
      {
        title: "control plane (r)",
        lines: only.has("r") ? runControlPlane(ROOT, RESULTS, quick, progress) : [],
      },
      {
        title: "a region's control plane (k)",
        lines: only.has("k") ? runRegion(ROOT, RESULTS, quick, progress) : [],
      },
      {
        title: "a hand-over (u)",
        lines: only.has("u")
          ? runHandover(
              ROOT,
              RESULTS,
              { quick, entry: built.gateway, proxyCpus: env.proxyCpus, clientCpus: env.clientCpus },
              progress,
            )
          : [],
      },
      {
        title: "the soak (s)",
        lines: only.has("s")
          ? await runSoak(ROOT, RESULTS, { quick, minutes: options.soakMinutes }, progress)
          : [],
      },
    ].filter((section) => section.lines.length > 0);

    const profiles = options.wantProfile
      ? await profileScenarios(
          {
            env,
            backend,
            loadCtx,
            cores,
            gateway: built.gateway,
            seconds: timing.seconds,
            nodeFlags: options.oursFlags,
          },
          LOAD_SCENARIOS.filter((s) => "acde".includes(s.id) && only.has(s.id)),
          progress,
        )
      : [];

    const order = ["direct", "haproxy", "nginx", "ours", "ours-haproxy", "node", "base"];
    rows.sort((a, b) =>
      a.scenario === b.scenario
        ? order.indexOf(a.target) - order.indexOf(b.target)
        : a.scenario.localeCompare(b.scenario),
    );
    const goalList = judge(rows);
    const subtitle = `${timing.runs} run(s) × ${timing.seconds} s, median; ${machine.nproc} CPUs ${machine.cpuModel}; ${new Date().toISOString().slice(0, 10)}; ours with node ${options.oursFlags.join(" ") || "(no flags)"}${options.unitFlags ? " (the unit's)" : ""}${base ? `; base = ours as of ${base.commit.slice(0, 12)}` : ""}${baseNodeVersion ? `; base on ${baseNodeVersion}, ours on node ${process.version}` : ""}${instances > 1 ? `; ${instances} instances` : ""}${options.attemptDelay !== undefined ? `; ours with connect_attempt_delay ${options.attemptDelay}` : ""}${workers > 1 ? `; ours with ${workers} workers on the proxy core` : ""}${idlePlan.lowered && only.has("g") ? `; (g) at ${idlePlan.count} idle connections per target, not ${idlePlan.asked}: the open-file limit is ${idlePlan.fdLimit}` : ""}`;
    log("");
    if (rows.length > 0) {
      log(textTable(rows));
      log("");
    }
    for (const line of scenarioLegend(rows)) log(line);
    log(
      "main figure: (a)-(e) proxy CPU per operation, (f) added p50 over direct, (g) RSS per idle connection, (i) runtime CPU per registration (p50/p99: until routable)",
    );
    log("");
    log("goals:");
    for (const line of goalLines(goalList)) log(`  ${line}`);
    for (const { title, lines } of standalone) {
      log("");
      log(`${title}:`);
      for (const line of lines) log(`  ${line}`);
    }
    if (base || baseNodeVersion) {
      log("");
      log(
        `against base (${[base?.commit.slice(0, 12), baseNodeVersion].filter(Boolean).join(", ")}):`,
      );
      for (const line of pairedLines) log(`  ${line}`);
    }

    // Only a complete run may replace the committed results.
    const { complete } = options;
    const name = quick ? "quick" : complete ? "latest" : "partial";
    const json = JSON.stringify(rows, (_k, v: unknown) => round(v), 2);
    writeFileSync(join(RESULTS, `${name}.json`), `${json}\n`);
    writeFileSync(join(RESULTS, `${name}.svg`), ratioChart(rows, subtitle));
    const md = [
      `<!-- written by npm run bench${quick ? " -- --quick" : ""} -->`,
      `${subtitle}`,
      "",
      markdownTable(rows),
      "",
      ...scenarioLegend(rows).map((l) => `- ${l}`),
      "",
      ...goalLines(goalList).map((l) => `- ${l}`),
      ...pairedLines.map((l) => `- ${l}`),
      ...["", ...sideBySide(rows)],
      ...standalone.flatMap(({ title, lines }) => [
        "",
        `${title[0]?.toUpperCase()}${title.slice(1)}:`,
        "",
        ...lines.map((l) => `- ${l}`),
      ]),
      "",
      "Machine:",
      "",
      `- ${machine.nproc} CPUs, ${machine.cpuModel}, Linux ${machine.kernel}`,
      ...Object.entries(machine.versions).map(([k, v]) => `- ${k}: ${v}`),
      ...profiles.flatMap((p) => ["", ...p.markdown]),
    ].join("\n");
    writeFileSync(join(RESULTS, `${name}.md`), `${md}\n`);
    if (complete && profiles.length > 0) {
      writeFileSync(
        join(RESULTS, "profile.json"),
        `${JSON.stringify(
          profiles.map((p) => p.summary),
          (_k, v: unknown) => round(v),
          2,
        )}\n`,
      );
    }
    log(
      `\nwrote bench/results/${name}.json, ${name}.svg, ${name}.md${complete && profiles.length > 0 ? ", profile.json" : ""}`,
    );
    failed = false;
    return 0;
  } finally {
    await ps.stopAll();
    ca.cleanup();
    if (failed || options.keep) log(`logs and configs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
