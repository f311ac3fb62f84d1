/**
 * The profiling pass: for each scenario, a fresh bench gateway under `--cpu-prof`, then one under
 * `--prof`, each loaded like the measured runs, stopped with SIGTERM so the profile is written.
 */
import { join } from "node:path";
import type { LoadContext } from "./load.js";
import { findProfile, type ProfileSummary, profileDir, summarizeCpuProfile } from "./profile.js";
import { type CoreSets, type LoadScenario, measureOnce, type Progress } from "./scenarios.js";
import { type Backend, type Env, startOurs } from "./targets.js";
import { summarizeTicks, type TickSummary } from "./ticks.js";

export interface ProfileContext {
  readonly env: Env;
  readonly backend: Backend;
  readonly loadCtx: LoadContext;
  readonly cores: CoreSets;
  readonly gateway: string;
  readonly seconds: number;
  /** The measured gateway's node flags; the profiler's own flags are added to them. */
  readonly nodeFlags: readonly string[];
}

export interface ProfileResult {
  readonly summary: ProfileSummary;
  readonly markdown: string[];
}

async function underLoad(
  ctx: ProfileContext,
  scenario: LoadScenario,
  name: string,
  nodeFlags: string[],
): Promise<void> {
  const target = await startOurs(ctx.env, ctx.backend, {
    entry: ctx.gateway,
    nodeFlags: [...ctx.nodeFlags, ...nodeFlags],
    name,
  });
  try {
    await measureOnce(ctx.loadCtx, ctx.cores, scenario, target, 1);
    await measureOnce(ctx.loadCtx, ctx.cores, scenario, target, ctx.seconds);
  } finally {
    if (target.proc) await ctx.env.ps.stop(target.proc, 15_000); // writing the profile takes a moment
  }
}

export async function profileScenarios(
  ctx: ProfileContext,
  scenarios: readonly LoadScenario[],
  progress: Progress,
): Promise<ProfileResult[]> {
  const results: ProfileResult[] = [];
  for (const scenario of scenarios) {
    progress(`profile: (${scenario.id}) ${scenario.title}`);
    const cpuDir = profileDir(ctx.env.dir, `cpuprof-${scenario.id}`);
    await underLoad(ctx, scenario, `ours-cpuprof-${scenario.id}`, [
      "--cpu-prof",
      `--cpu-prof-dir=${cpuDir}`,
    ]);
    const summary = summarizeCpuProfile(
      findProfile(cpuDir, ".cpuprofile"),
      ctx.gateway,
      scenario.id,
    );

    const tickDir = profileDir(ctx.env.dir, `prof-${scenario.id}`);
    const tickLog = join(tickDir, "v8.log");
    await underLoad(ctx, scenario, `ours-prof-${scenario.id}`, [
      "--prof",
      "--no-logfile-per-isolate",
      `--logfile=${tickLog}`,
    ]);
    const native = summarizeTicks(tickLog);
    const full = { ...summary, native };
    results.push({ summary: full, markdown: profileMarkdown(scenario, full) });
    for (const line of profileMarkdown(scenario, full)) progress(`  ${line}`);
  }
  return results;
}

function profileMarkdown(scenario: LoadScenario, s: ProfileSummary): string[] {
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  return [
    `### Profile of ours under (${scenario.id}) ${scenario.title}`,
    "",
    `\`node --cpu-prof\`: ${(s.busyMs / 1000).toFixed(1)} s busy, ${pct(s.idleShare)} idle. Self time, share of busy:`,
    "",
    "| self | function | where |",
    "|---:|---|---|",
    ...s.top.map((e) => `| ${pct(e.selfShare)} | \`${e.name}\` | ${e.where} |`),
    "",
    "By area:",
    "",
    ...s.byArea.map((a) => `- ${pct(a.share)} ${a.area}`),
    "",
    ...(s.native ? tickMarkdown(s.native) : []),
  ];
}

function tickMarkdown(t: TickSummary): string[] {
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  return [
    `\`node --prof\` (native code named by symbol): ${t.ticks - t.idleTicks} busy ticks of ${t.ticks}. By area:`,
    "",
    ...t.byArea.map((a) => `- ${pct(a.share)} ${a.area}`),
    "",
    "Top native/JS entries:",
    "",
    "| ticks | function | area |",
    "|---:|---|---|",
    ...t.top.map(
      (e) =>
        `| ${pct(e.share)} | \`${e.name.length > 90 ? `${e.name.slice(0, 87)}...` : e.name}\` | ${e.area} |`,
    ),
  ];
}
