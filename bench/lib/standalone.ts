/**
 * The scenarios that run as processes of their own rather than as load on a proxy: (h), the
 * route lookup alone, (i), the control plane per engine, (r), the control plane, (k), a
 * region's control plane, (u), a hand-over, and (s), the soak.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { type EnginesResult, engineLines, engineRows } from "../registration/engines-stats.js";
import { resultName } from "../soak/plan.js";
import { type SoakResult, soakLines } from "../soak/stats.js";
import {
  type ControlPlaneResult,
  controlPlaneLines,
  type HandoverResult,
  handoverLines,
  type RegionResult,
  regionLines,
  type Row,
  routeRow,
} from "./report.js";

/**
 * (h): `bench/route-bench.ts` (bundled as `entry`) pinned to the proxy core, at least 3 runs.
 */
export function runRouteBench(cpus: string, entry: string, quick: boolean, runs: number): Row {
  const r = spawnSync(
    "taskset",
    [
      ...["-c", cpus, process.execPath, entry],
      ...["--seconds", quick ? "0.3" : "1", "--runs", String(Math.max(runs, 3))],
    ],
    { encoding: "utf8", timeout: 120_000 },
  );
  if (r.status !== 0) throw new Error(`route bench failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { routeSelect: number[]; routeOnly: number[] };
  return routeRow(out.routeSelect, out.routeOnly);
}

/**
 * (r), the control plane: `bench/registration/scale.ts` in a process of its own (it
 * needs root, a network namespace and wireguard-go), unpinned like the gateway's primary. It
 * prints its own table and writes its JSON; this returns the summary lines for the report.
 */
export function runControlPlane(
  root: string,
  results: string,
  quick: boolean,
  progress: (line: string) => void,
): string[] {
  progress("(r) control plane: registering CVMs through the real service, store and WireGuard");
  const out = join(results, quick ? "registration-quick.json" : "registration.json");
  runScript(root, "scale.ts", out, quick, "control-plane");
  return controlPlaneLines(JSON.parse(readFileSync(out, "utf8")) as ControlPlaneResult);
}

/**
 * (i), the control plane per engine: `bench/registration/engines.ts` in a process of its own
 * (root, a network namespace, wireguard-go), on every CPU like a host's gateway (as (s)), not
 * the bench's pinning. Returns its rows for the run's table and its summary lines.
 */
export function runEngines(
  root: string,
  results: string,
  quick: boolean,
  progress: (line: string) => void,
): { rows: Row[]; lines: string[] } {
  progress("(i) the control plane per engine: registration until routable, CPU per registration");
  const out = join(results, quick ? "engines-quick.json" : "engines.json");
  const script = join(root, "bench", "registration", "engines.ts");
  const args = ["--out", out, ...(quick ? ["--count", "10", "--probed", "5"] : [])];
  runTsx(root, script, args, "control plane per engine", allCpus());
  const r = JSON.parse(readFileSync(out, "utf8")) as EnginesResult;
  return { rows: engineRows(r), lines: engineLines(r) };
}

/**
 * (k), a region's control plane: `bench/registration/region.ts` (three hosts, each the real
 * service, etcd store and wireguard-go, on a real three-member etcd), in a process of its own.
 */
export function runRegion(
  root: string,
  results: string,
  quick: boolean,
  progress: (line: string) => void,
): string[] {
  progress("(k) a region: registering CVMs through three hosts sharing etcd, and a host's death");
  const out = join(results, quick ? "region-quick.json" : "region.json");
  runScript(root, "region.ts", out, quick, "region");
  return regionLines(JSON.parse(readFileSync(out, "utf8")) as RegionResult);
}

/**
 * (u), a hand-over: `bench/handover/handover.ts` in a process of its own, with the bench's
 * gateway bundle (`entry`) and core split; it starts its own backend, socket holder and
 * generations.
 */
export function runHandover(
  root: string,
  results: string,
  opts: { quick: boolean; entry: string; proxyCpus: string; clientCpus: string },
  progress: (line: string) => void,
): string[] {
  progress("(u) a hand-over: new connections and draining streams across gateway generations");
  const out = join(results, opts.quick ? "handover-quick.json" : "handover.json");
  const args = [
    ...["--entry", opts.entry, "--proxy-cpus", opts.proxyCpus, "--client-cpus", opts.clientCpus],
    ...(opts.quick ? ["--quick"] : []),
  ];
  runTsx(root, join(root, "bench", "handover", "handover.ts"), [...args, "--out", out], "handover");
  return handoverLines(JSON.parse(readFileSync(out, "utf8")) as HandoverResult);
}

/** `bench/registration/<script> --out <out>` (500 CVMs with `quick`); throws if it fails. */
function runScript(root: string, script: string, out: string, quick: boolean, what: string): void {
  const args = ["--out", out, ...(quick ? ["--count", "500"] : [])];
  runTsx(root, join(root, "bench", "registration", script), args, what);
}

/** `cpus`: run there (`taskset -c`) rather than where the bench pinned itself. */
function runTsx(
  root: string,
  script: string,
  args: readonly string[],
  what: string,
  cpus?: string,
): void {
  const tsx = [join(root, "node_modules", ".bin", "tsx"), script, ...args];
  const [file, ...argv] = cpus === undefined ? tsx : ["taskset", "-c", cpus, ...tsx];
  const r = spawnSync(file as string, argv, {
    stdio: "inherit",
    timeout: 10 * 60_000,
  });
  if (r.status !== 0) throw new Error(`${what} bench failed (exit ${r.status ?? r.signal})`);
}

/** Every CPU of the machine, for `taskset -c`. */
const allCpus = (): string =>
  cpus()
    .map((_, k) => k)
    .join(",");

let soak: ChildProcess | undefined;

/**
 * (s), the soak: `bench/soak/soak.ts` in a process of its own (it needs root, a network
 * namespace and wireguard-go) for `minutes`, on every CPU like a host's gateway (not the
 * bench's pinning, which it would inherit), and SIGTERMed if this process dies. It prints its
 * progress and summary and writes its JSON; this returns the summary lines. Asynchronous, so
 * the bench's signal handlers can stop it meanwhile (`stopSoak`).
 */
export async function runSoak(
  root: string,
  results: string,
  o: { quick: boolean; minutes: number },
  progress: (line: string) => void,
): Promise<string[]> {
  progress(
    `(s) soak: ${o.minutes} min of mixed traffic through our gateway, registrations churning`,
  );
  const out = join(results, resultName(o.minutes, o.quick));
  const child = spawn(
    "taskset",
    [
      ...["-c", allCpus(), "setpriv", "--pdeathsig", "TERM", process.execPath, "--import", "tsx"],
      ...[join(root, "bench", "soak", "soak.ts"), "--minutes", String(o.minutes), "--out", out],
    ],
    { stdio: "inherit", cwd: root },
  );
  soak = child;
  const timer = setTimeout(() => child.kill("SIGTERM"), (o.minutes + 10) * 60_000);
  try {
    const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
    if (code !== 0) throw new Error(`soak bench failed (exit ${code ?? signal})`);
  } finally {
    clearTimeout(timer);
    soak = undefined;
  }
  return soakLines(JSON.parse(readFileSync(out, "utf8")) as SoakResult);
}

/** For the bench's signal and exit handlers: a soak in progress stops its own processes. */
export function stopSoak(): void {
  soak?.kill("SIGTERM");
}
