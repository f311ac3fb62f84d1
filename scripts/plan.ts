/**
 * Offline plans: the program runs under Pulumi's mocks (no CLI, no credentials) and every
 * registered resource is recorded with its type, name, parent, dependencies and inputs,
 * secrets masked, in a fixed order. `npm run plan` writes plans/<stack>.json;
 * `npm run plan -- --diff` compares with the committed plans (exit 1 on a difference).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml } from "yaml";
import { wgPublicKey } from "../gateway-runtime/wg/keys.js";
import {
  diffPlans,
  formatDiff,
  isEmpty,
  keyOf,
  type Plan,
  type PlannedResource,
} from "../components/plan-diff.js";
import type { BundleInfo } from "../program.js";

export * from "../components/plan-diff.js";

export const ROOT = new URL("../", import.meta.url).pathname;
const sha = (text: string) => createHash("sha256").update(text).digest("hex");
const { specialSigKey, specialSecretSig, specialAssetSig, specialArchiveSig } = pulumi.runtime;

/** Plans do not change with every build: the bundle hash is a fixed stand-in. */
export const STAND_IN_BUNDLE: BundleInfo = {
  path: "dist/gateway.mjs",
  sha256: sha("offline plan: stand-in for dist/gateway.mjs"),
};
export const SECRET = "[secret]";

const urnKey = (urn: string) => {
  const [, , qualifiedType = "", name = ""] = urn.split("::");
  return `${qualifiedType.split("$").pop()}::${name}`;
};

/** A stack file's config as `setAllConfig` takes it; each `secure:` value becomes a named stand-in. */
export function stackConfig(stack: string, dir = join(ROOT, "stacks")) {
  const doc = parseYaml(readFileSync(join(dir, `Pulumi.${stack}.yaml`), "utf8")) as {
    config?: Record<string, unknown>;
  };
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    let secret = false;
    const standIn = (v: unknown, path: string): unknown => {
      if (v !== null && typeof v === "object" && !Array.isArray(v)) {
        const o = v as Record<string, unknown>;
        if (Object.keys(o).length === 1 && typeof o.secure === "string") {
          secret = true;
          return `stand-in-secret(${path})`;
        }
        return Object.fromEntries(
          Object.entries(o).map(([k, x]) => [k, standIn(x, `${path}.${k}`)]),
        );
      }
      return Array.isArray(v) ? v.map((x, i) => standIn(x, `${path}[${i}]`)) : v;
    };
    const plain = standIn(value, key);
    config[key] = typeof plain === "string" ? plain : JSON.stringify(plain);
    if (secret) secretKeys.push(key);
  }
  return { config, secretKeys };
}

type MockResult = { id: string; state: Record<string, unknown> };
export type ResourceOverride = (
  args: pulumi.runtime.MockResourceArgs,
) => Promise<MockResult | undefined>;

/** Deterministic fakes for what real runs generate: WireGuard keys, the ACME account, zone ids. */
export function planMocks(stack: string, override?: ResourceOverride): pulumi.runtime.Mocks {
  return {
    async newResource(args) {
      const custom = await override?.(args);
      if (custom) return custom;
      const seed = sha(`${stack}:${args.name}`);
      if (args.type === "pulumi-nodejs:dynamic/gateway:WireGuardKey") {
        const privateKey = Buffer.from(sha(`${seed}:${args.inputs.rotation}`), "hex").toString(
          "base64",
        );
        const publicKey = wgPublicKey(privateKey) as string;
        return { id: publicKey, state: { ...args.inputs, privateKey, publicKey } };
      }
      if (args.type === "pulumi-nodejs:dynamic/gateway:AcmeAccount") {
        const origin = new URL(String(args.inputs.directoryUrl)).origin;
        const accountUrl = `${origin}/acme/acct/${Number.parseInt(seed.slice(0, 8), 16)}`;
        const accountKey = `-----BEGIN PRIVATE KEY-----\nstand-in ${seed.slice(0, 16)}\n-----END PRIVATE KEY-----\n`;
        return { id: accountUrl, state: { ...args.inputs, accountUrl, accountKey } };
      }
      return { id: `${args.name}-id`, state: args.inputs };
    },
    call(args) {
      if (args.token === "cloudflare:index/getZone:getZone") {
        const filter = args.inputs.filter as { name?: string } | undefined;
        return { id: `zone-id-of-${filter?.name}`, name: filter?.name };
      }
      throw new Error(`no mock for the invoke ${args.token}`);
    },
  };
}

function record(value: unknown, reveal: boolean): unknown {
  if (Array.isArray(value)) return value.map((v) => record(v, reveal));
  if (value === null || typeof value !== "object") return value;
  const o = value as Record<string, unknown>;
  const sig = o[specialSigKey];
  if (sig === specialSecretSig) return reveal ? record(o.value, reveal) : SECRET;
  if (sig === specialAssetSig || sig === specialArchiveSig)
    return { asset: o.path ?? o.uri ?? o.text };
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o).sort()) {
    out[k] = k === "__provider" ? "[serialized dynamic provider]" : record(o[k], reveal);
  }
  return out;
}

export interface CaptureOptions {
  readonly bundle?: BundleInfo;
  /** Replace the config read from the stack file (values as `setAllConfig` takes them). */
  readonly config?: { config: Record<string, string>; secretKeys: string[] };
  /** Keep secret values instead of "[secret]": for the lab, in memory only, never written. */
  readonly revealSecrets?: boolean;
  readonly override?: ResourceOverride;
}

/** Runs the program for one stack under mocks and returns its plan. */
export async function capturePlan(stack: string, opts: CaptureOptions = {}): Promise<Plan> {
  await pulumi.runtime.setMocks(planMocks(stack, opts.override), "cvm-tls-gateway", stack, false);
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource(req: RegisterRequest, cb: unknown): void;
  };
  const resources: PlannedResource[] = [];
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    resources.push({
      type: req.getType(),
      name: req.getName(),
      parent: req.getParent() ? urnKey(req.getParent()) : null,
      dependsOn: [...new Set(req.getDependenciesList().map(urnKey))].sort(),
      additionalSecretOutputs: [...req.getAdditionalsecretoutputsList()].sort(),
      inputs: record(req.getObject()?.toJavaScript() ?? {}, opts.revealSecrets === true) as Record<
        string,
        unknown
      >,
    });
    original(req, cb);
  };
  const { config, secretKeys } = opts.config ?? stackConfig(stack);
  pulumi.runtime.setAllConfig(config, secretKeys);
  const { gatewayProgram } = await import("../program.js");
  const errors: unknown[] = [];
  const onError = (error: unknown) => errors.push(error);
  process.on("unhandledRejection", onError);
  let thrown: { error: unknown } | undefined;
  try {
    try {
      gatewayProgram({ bundle: opts.bundle ?? STAND_IN_BUNDLE });
    } catch (error) {
      thrown = { error };
    }
    // Also after a RunError: registrations the program started settle here, not as unhandled
    // errors under the next capture's mocks.
    await pulumi.runtime.disconnect().catch((error: unknown) => errors.push(error));
  } finally {
    process.off("unhandledRejection", onError);
  }
  if (thrown) throw thrown.error;
  if (errors.length > 0) throw errors[0];
  resources.sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  return { stack, resources };
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getAdditionalsecretoutputsList(): string[];
  getObject(): { toJavaScript(): unknown } | undefined;
}

export const planJson = (plan: Plan) => `${JSON.stringify(plan, null, 2)}\n`;

export function allStacks(dir = join(ROOT, "stacks")): string[] {
  return readdirSync(dir)
    .map((f) => /^Pulumi\.([a-z0-9-]+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

/** A host's steps in the order they run (dependencies first): what the lab executes. */
export function hostSteps(plan: Plan, host: string) {
  const parent = `gateway:index:GatewayHost::${host}`;
  const mine = plan.resources.filter((r) => r.parent === parent);
  const done = new Set<string>();
  const ordered: PlannedResource[] = [];
  while (ordered.length < mine.length) {
    const next = mine.find(
      (r) =>
        !done.has(keyOf(r)) && r.dependsOn.every((d) => done.has(d) || !d.startsWith("command:")),
    );
    if (!next) throw new Error(`dependency cycle among the steps of ${host}`);
    done.add(keyOf(next));
    ordered.push(next);
  }
  return ordered.map((r) =>
    r.type === "command:remote:CopyToRemote"
      ? {
          name: r.name,
          kind: "copy" as const,
          source: (r.inputs.source as { asset: string }).asset,
          remotePath: r.inputs.remotePath as string,
        }
      : {
          name: r.name,
          kind: "command" as const,
          script: r.inputs.create as string,
          stdin: r.inputs.stdin as string | undefined,
        },
  );
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
