/**
 * Offline plans: `pulumi preview` of each stack through the recording engine (tools/engine),
 * which runs the compiled program (`npm run build`) with @pulumi/pulumi's own language entry
 * and dynamic provider host; only the command and cloudflare providers are stand-ins, and a
 * preview never runs them. Every registration is recorded as the SDK serialized it, with
 * parent, dependencies and secret markers, secrets masked, in a fixed order.
 * A plan previews an update of a stack whose WireGuard keys and ACME account already exist
 * (deterministic stand-ins), so it shows what a change of config does, as a CI preview does;
 * `fresh: true` previews a new stack, where everything derived from them is unknown.
 * `npm run plan` writes plans/<stack>.json; `npm run plan -- --diff` compares with them.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { diffPlans, formatDiff, isEmpty, keyOf, type Plan, type PlannedResource } from "./diff.js";
import { readBundle } from "../../components/bundle.js";
import { type Registration, type ResourceState, readStackConfig, run } from "../engine/index.js";
import { commandProvider } from "../engine/providers/command.js";
import { cloudflareProvider } from "../engine/providers/cloudflare.js";
import { ASSET_SIG, type Props, SECRET_SIG, SIG_KEY, UNKNOWN } from "../engine/values.js";
import { standIn } from "./stand-ins.js";

export * from "./diff.js";

export const ROOT = new URL("../../", import.meta.url).pathname;

export const SECRET = "[secret]";
export const UNKNOWN_VALUE = "[unknown]";
/** Plans do not change with every build: the bundle's hash is recorded as this. */
export const BUNDLE_HASH = "[sha256 of dist/gateway.mjs]";

/** A stack file's config as the engine passes it; each `secure:` value becomes a named stand-in. */
export function stackConfig(stack: string, dir = join(ROOT, "stacks")) {
  return readStackConfig(dir, stack);
}

const urnKey = (urn: string) => {
  const [, , qualifiedType = "", name = ""] = urn.split("::");
  return `${qualifiedType.split("$").pop()}::${name}`;
};

/** State for the generated resources as if an earlier `pulumi up` had made them (deterministic). */
export function existingState(stack: string) {
  return (urn: string, reg: Registration): ResourceState | undefined => {
    const base = {
      urn,
      type: reg.type,
      name: reg.name,
      custom: true,
      parent: reg.parent,
      dependencies: reg.dependencies,
      additionalSecretOutputs: reg.additionalSecretOutputs,
    };
    const inputs = Object.fromEntries(Object.entries(reg.inputs).filter(([, v]) => v !== UNKNOWN));
    const made = standIn(stack, reg.type, reg.name, reg.inputs);
    return made && { ...base, id: made.id, inputs, outputs: made.outputs as Props };
  };
}

function record(
  value: unknown,
  reveal: boolean,
  bundle: { sha256: string; path: string },
): unknown {
  if (Array.isArray(value)) return value.map((v) => record(v, reveal, bundle));
  if (value === UNKNOWN) return UNKNOWN_VALUE;
  if (bundle.sha256 !== "" && value === bundle.sha256) return BUNDLE_HASH;
  if (value === null || typeof value !== "object") return value;
  const o = value as Record<string, unknown>;
  const sig = o[SIG_KEY];
  if (sig === SECRET_SIG) return reveal ? record(o.value, reveal, bundle) : SECRET;
  if (sig === ASSET_SIG) {
    const path = String(o.path ?? o.uri ?? o.text);
    return { asset: path.startsWith(ROOT) ? path.slice(ROOT.length) : path };
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o).sort()) {
    out[k] = k === "__provider" ? "[serialized dynamic provider]" : record(o[k], reveal, bundle);
  }
  return out;
}

export interface CaptureOptions {
  /** Replace the config read from the stack file (values as the engine passes them). */
  readonly config?: { config: Record<string, string>; secretKeys: string[] };
  /** Keep secret values instead of "[secret]": in memory only, never written. */
  readonly revealSecrets?: boolean;
  /** Record the bundle's real sha256 instead of BUNDLE_HASH. */
  readonly keepBundleHash?: boolean;
  /** Preview a new stack (no keys, no account yet) instead of an update of an existing one. */
  readonly fresh?: boolean;
  readonly log?: (line: string) => void;
}

/** `pulumi preview` of one stack through the recording engine; returns its plan. */
export async function capturePlan(stack: string, opts: CaptureOptions = {}): Promise<Plan> {
  const { config, secretKeys } = opts.config ?? stackConfig(stack);
  const bundle = opts.keepBundleHash ? { path: "", sha256: "" } : readBundle();
  const result = await run({
    projectDir: ROOT,
    stack,
    mode: "preview",
    config,
    secretKeys,
    providers: {
      command: commandProvider({ pwd: ROOT, log: () => {} }),
      cloudflare: cloudflareProvider({ zones: "any" }),
    },
    ...(opts.fresh ? {} : { prior: existingState(stack) }),
    log: opts.log ?? (() => {}),
  });
  const resources: PlannedResource[] = [];
  for (const [, reg] of result.deployment.registrations) {
    if (reg.type === "pulumi:pulumi:Stack") continue;
    const parent =
      reg.parent === "" || reg.parent.includes("::pulumi:pulumi:Stack::")
        ? null
        : urnKey(reg.parent);
    resources.push({
      type: reg.type,
      name: reg.name,
      parent,
      dependsOn: [...new Set(reg.dependencies.map(urnKey))].sort(),
      additionalSecretOutputs: [...reg.additionalSecretOutputs].sort(),
      inputs: record(reg.inputs, opts.revealSecrets === true, bundle) as Record<string, unknown>,
    });
  }
  resources.sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  return { stack, resources };
}

export const planJson = (plan: Plan) => `${JSON.stringify(plan, null, 2)}\n`;

export function allStacks(dir = join(ROOT, "stacks")): string[] {
  return readdirSync(dir)
    .map((f) => /^Pulumi\.([a-z0-9-]+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      stack: { type: "string", multiple: true },
      diff: { type: "boolean", default: false },
      base: { type: "string", default: join(ROOT, "plans") },
      out: { type: "string", default: join(ROOT, "plans") },
      stacks: { type: "string", default: join(ROOT, "stacks") },
    },
  });
  let different = false;
  for (const stack of values.stack ?? allStacks(values.stacks)) {
    const plan = await capturePlan(stack, { config: stackConfig(stack, values.stacks) });
    if (!values.diff) {
      mkdirSync(values.out, { recursive: true });
      writeFileSync(join(values.out, `${stack}.json`), planJson(plan));
      process.stdout.write(
        `plans: wrote ${join(values.out, `${stack}.json`)} (${plan.resources.length} resources)\n`,
      );
      continue;
    }
    const file = join(values.base, `${stack}.json`);
    const before: Plan = existsSync(file)
      ? JSON.parse(readFileSync(file, "utf8"))
      : { stack, resources: [] };
    const diff = diffPlans(before, plan);
    different ||= !isEmpty(diff);
    process.stdout.write(formatDiff(stack, diff));
  }
  return different ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`plan: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(2);
    },
  );
}
