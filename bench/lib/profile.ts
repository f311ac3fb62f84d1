/**
 * Where our gateway's CPU goes: `node --cpu-prof` (self time per JS function, with native work
 * that no JS frame called shown as "(program)") and `node --prof` (V8's tick profiler, which
 * also names the C++ and OpenSSL functions inside the node binary) on the bench gateway under
 * the load of a scenario. Profiling slows the process, so these runs are never measured.
 */
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TickSummary } from "./ticks.js";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  readonly name: string;
  /** Source file (bundle lines mapped back through esbuild's `// path` markers) and line. */
  readonly where: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) samples. */
  readonly selfShare: number;
}

export interface ProfileSummary {
  readonly scenario: string;
  readonly busyMs: number;
  readonly idleShare: number;
  readonly top: readonly ProfileEntry[];
  /** Self time summed per source file / area. */
  readonly byArea: readonly { area: string; share: number }[];
  /** From `node --prof`: where the busy ticks landed, native functions named. */
  readonly native?: TickSummary;
}

/** Line → source module for an esbuild bundle (it writes `// path/to/file.ts` before each). */
function moduleIndex(bundle: string): (line: number) => string {
  const marks: [number, string][] = [];
  readFileSync(bundle, "utf8")
    .split("\n")
    .forEach((text, i) => {
      const m = /^\/\/ ((?:gateway-runtime|bench|tests|node_modules)\/\S+)$/.exec(text);
      if (m?.[1]) marks.push([i, m[1]]);
    });
  return (line: number): string => {
    let lo = 0;
    let hi = marks.length - 1;
    let found = "bundle";
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [at, path] = marks[mid] as [number, string];
      if (at <= line) {
        found = path;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
}

function areaOf(where: string): string {
  if (where.startsWith("(")) return where;
  if (where.startsWith("node:")) return "node internals (JS)";
  const nm = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  if (nm) return `node_modules/${nm[1]}`;
  return where.replace(/:\d+$/, "");
}

export function summarizeCpuProfile(
  file: string,
  bundle: string,
  scenario: string,
  topN = 25,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const moduleAt = moduleIndex(bundle);
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, { name: string; where: string; us: number }>();
  let idleUs = 0;
  let busyUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = byId.get(profile.samples[i] as number);
    const us = profile.timeDeltas[i + 1] ?? 0; // a sample lasts until the next one
    if (!frame) continue;
    const special = frame.functionName.startsWith("(") && frame.url === "";
    if (frame.functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    busyUs += us;
    let where: string;
    if (special) where = frame.functionName;
    else if (frame.url.startsWith("file:") && frame.url.endsWith(".mjs")) {
      where = `${moduleAt(frame.lineNumber)}`;
    } else if (frame.url.startsWith("file:")) where = fileURLToPath(frame.url);
    else where = frame.url || "(native)";
    const name = special ? frame.functionName : frame.functionName || "(anonymous)";
    const key = `${name}\u0000${where}`;
    const entry = self.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    self.set(key, entry);
  }
  const total = busyUs || 1;
  const top = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, selfShare: e.us / total }));
  const areas = new Map<string, number>();
  for (const e of self.values())
    areas.set(areaOf(e.where), (areas.get(areaOf(e.where)) ?? 0) + e.us);
  const byArea = [...areas.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([area, us]) => ({ area, share: us / total }));
  return {
    scenario,
    busyMs: busyUs / 1000,
    idleShare: idleUs / (idleUs + busyUs || 1),
    top,
    byArea,
  };
}

/** The newest `.cpuprofile` in `dir`. */
export function findProfile(dir: string, ext: string): string {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort();
  const last = files[files.length - 1];
  if (!last) throw new Error(`no ${ext} written in ${dir}`);
  return join(dir, last);
}

export function profileDir(base: string, name: string): string {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
