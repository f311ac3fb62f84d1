/**
 * The command line of `npm run bench` (see `bench/run.ts` and BENCHMARKS.md "Reproduce"):
 * parsed and checked in one place, every problem reported at once.
 */
import { parseArgs } from "node:util";
import { NODE_FLAGS } from "../../host/layout.js";
import { parseDuration } from "../../gateway-runtime/config/index.js";
import { SOAK_MINUTES } from "../soak/plan.js";
import type { ScenarioId } from "./scenarios.js";
import { PROXIES } from "./targets.js";

/** The scenarios that run as processes of their own (`standalone.ts`). */
export type StandaloneId = "i" | "r" | "k" | "u" | "s";

/**
 * Every scenario: the load ones, (g), (h), the control plane per engine (i), the control plane
 * (r), a region's control plane (k), a hand-over (u) and the soak (s). A complete run has all.
 */
export const ALL_SCENARIOS: readonly (ScenarioId | StandaloneId)[] = [
  "a",
  "b",
  "c",
  "d",
  "e",
  "f",
  "g",
  "h",
  "i",
  "r",
  "k",
  "u",
  "s",
];

/** What a complete run measures ("base" only comes with `--base`). */
export const DEFAULT_TARGETS: readonly string[] = [
  "direct",
  "haproxy",
  "nginx",
  "ours",
  "ours-haproxy",
  "node",
];

export interface BenchOptions {
  readonly quick: boolean;
  readonly timing: {
    readonly runs: number;
    readonly seconds: number;
    readonly warmupSeconds: number;
  };
  /** Scenario (g)'s idle connections, as asked (`planIdle` may lower the default's). */
  readonly idleConnections: number;
  /** `--idle-connections` was given: a count that does not fit fails rather than lowered. */
  readonly idleExplicit: boolean;
  /** Scenario (g): the groups the idle client offers (`--idle-groups`, e.g. a post-quantum one). */
  readonly idleGroups: string | undefined;
  readonly targetNames: ReadonlySet<string>;
  readonly only: ReadonlySet<ScenarioId | StandaloneId>;
  /** (s): how long the soak's load runs, in minutes (`--soak-minutes`; 1 with `--quick`). */
  readonly soakMinutes: number;
  /**
   * Node flags for our gateway and the Node floor: by default the systemd unit's
   * (`NODE_FLAGS`); `--ours-flags="..."` replaces them to compare tunings (`--ours-flags=` for
   * none).
   */
  readonly oursFlags: readonly string[];
  /** `oursFlags` are the unit's. */
  readonly unitFlags: boolean;
  /** Healthy instances of the bench app for ours (and base): connects per connection. */
  readonly instances: number;
  /** Ours only: `core.proxy.connect_attempt_delay` (the config's default, "0s", when absent). */
  readonly attemptDelay: string | undefined;
  /** Ours only: `core.proxy.workers`, all on the proxy core (what several processes cost). */
  readonly workers: number;
  /** `--base REV`: ours as of that commit runs as target "base". */
  readonly base: string | undefined;
  /**
   * `--base-node PATH`: target "base" runs on that node binary (ours' code, or `--base`'s), so
   * two Node releases are paired round by round on the same bundle.
   */
  readonly baseNode: string | undefined;
  readonly wantProfile: boolean;
  readonly keep: boolean;
  /** Only a complete default run may replace the committed `latest.*`. */
  readonly complete: boolean;
}

export class BenchUsageError extends Error {}

export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const { values: args } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      targets: { type: "string" },
      "ours-flags": { type: "string" },
      base: { type: "string" },
      "base-node": { type: "string" },
      instances: { type: "string" },
      "attempt-delay": { type: "string" },
      workers: { type: "string" },
      runs: { type: "string" },
      seconds: { type: "string" },
      "idle-connections": { type: "string" },
      "idle-groups": { type: "string" },
      "soak-minutes": { type: "string" },
      "no-profile": { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
    },
  });
  const quick = args.quick ?? false;
  const timing = {
    runs: Number(args.runs ?? (quick ? 1 : 3)),
    seconds: Number(args.seconds ?? (quick ? 2 : 10)),
    warmupSeconds: quick ? 0.5 : 3,
  };
  const idleConnections = Number(args["idle-connections"] ?? (quick ? 1000 : 5000));
  const targetNames = new Set(
    (args.targets ?? DEFAULT_TARGETS.join(",")).split(",").map((s) => s.trim()),
  );
  const baseNode = args["base-node"];
  if (args.base !== undefined || baseNode !== undefined) targetNames.add("base");
  const oursFlags =
    args["ours-flags"] === undefined
      ? [...NODE_FLAGS]
      : args["ours-flags"].split(" ").filter((s) => s !== "");
  const unitFlags = oursFlags.join(" ") === NODE_FLAGS.join(" ");
  const instances = Number(args.instances ?? 1);
  const attemptDelay = args["attempt-delay"];
  const workers = Number(args.workers ?? 1);
  const only = new Set(
    (args.only?.split(",").map((s) => s.trim()) ?? ALL_SCENARIOS) as (ScenarioId | StandaloneId)[],
  );
  const soakMinutes = Number(args["soak-minutes"] ?? (quick ? 1 : SOAK_MINUTES));

  const problems: string[] = [];
  for (const s of only) if (!ALL_SCENARIOS.includes(s)) problems.push(`unknown scenario "${s}"`);
  for (const t of targetNames)
    if (!["direct", ...PROXIES].includes(t)) problems.push(`unknown target "${t}"`);
  if (args.base === "") problems.push("--base needs a commit");
  if (baseNode === "") problems.push("--base-node needs a node binary");
  if (attemptDelay !== undefined && parseDuration(attemptDelay) === undefined)
    problems.push(`--attempt-delay "${attemptDelay}" is not a duration like "250ms"`);
  for (const [name, v] of Object.entries({
    runs: timing.runs,
    seconds: timing.seconds,
    "idle-connections": idleConnections,
    instances,
    workers,
    "soak-minutes": soakMinutes,
  })) {
    if (!(Number.isFinite(v) && v > 0)) problems.push(`--${name} must be a positive number`);
  }
  if (problems.length > 0) throw new BenchUsageError(problems.join("; "));

  return {
    quick,
    timing,
    idleConnections,
    idleExplicit: args["idle-connections"] !== undefined,
    idleGroups: args["idle-groups"],
    targetNames,
    only,
    soakMinutes,
    oursFlags,
    unitFlags,
    instances,
    attemptDelay,
    workers,
    base: args.base,
    baseNode,
    wantProfile: !quick && !args["no-profile"],
    keep: args.keep ?? false,
    complete:
      !quick &&
      unitFlags &&
      args.base === undefined &&
      baseNode === undefined &&
      args["idle-groups"] === undefined &&
      instances === 1 &&
      attemptDelay === undefined &&
      workers === 1 &&
      soakMinutes === SOAK_MINUTES &&
      ALL_SCENARIOS.every((s) => only.has(s)) &&
      DEFAULT_TARGETS.every((t) => targetNames.has(t)),
  };
}
