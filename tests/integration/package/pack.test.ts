/**
 * The package as another team gets it: `npm pack` of a copy of the repository (its `prepack`
 * builds bin/ and the bundle there, so the bin/ other tests read meanwhile is left alone),
 * `npm install <tarball>` into a scratch project that has only what a consumer adds itself
 * (@pulumi/pulumi, @types/node), so a runtime dependency missing from package.json fails here;
 * the docs' TypeScript example compiled against the installed declarations (tsc --strict); and
 * the project's own program, which composes GatewayRegion with the args of examples/yaml, run
 * under the recording engine as `pulumi preview` runs it. The bundle must be the package's own,
 * found and hashed inside.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  GATEWAY_REGION_TYPE,
  GATEWAY_REGION_TYPE_BEFORE,
} from "../../../components/gateway-region.js";
import { run } from "../../../tools/engine/index.js";
import { cloudflareProvider } from "../../../tools/engine/providers/cloudflare.js";
import { commandProvider } from "../../../tools/engine/providers/command.js";
import { SECRET_SIG, SIG_KEY } from "../../../tools/engine/values.js";
import { existingState, ROOT } from "../../../tools/plan/plan.js";

const work = mkdtempSync(join(tmpdir(), "gateway-pack-"));
const project = join(work, "consumer");
const installed = join(project, "node_modules", "cvm-tls-gateway");
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The YAML example's region args; each `${secret}` becomes a secret stand-in in the program. */
function exampleArgs(): Record<string, unknown> {
  const doc = parseYaml(readFileSync(join(ROOT, "examples", "yaml", "Pulumi.yaml"), "utf8"));
  const props = doc.resources.region.properties as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(props).map(([k, v]) => [
      k,
      typeof v === "string" && v.startsWith("${") ? { secret: `stand-in-${k}` } : v,
    ]),
  );
}

const PROGRAM = `import { readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { GatewayRegion } from "cvm-tls-gateway";

const args = JSON.parse(readFileSync(new URL("./args.json", import.meta.url), "utf8"));
for (const [key, value] of Object.entries(args)) {
  if (value !== null && typeof value === "object" && "secret" in value) args[key] = pulumi.secret(value.secret);
}
const region = new GatewayRegion("region", args);
export const baseDomain = region.baseDomain;
export const hosts = region.hosts;
`;

/** Args a consumer gets wrong, which the installed declarations must refuse. */
const REFUSED = `import * as pulumi from "@pulumi/pulumi";
import { GatewayRegion, type GatewayRegionArgs } from "cvm-tls-gateway";

declare const args: GatewayRegionArgs;
// @ts-expect-error a secret is an Input<string>, not a number
new GatewayRegion("a", { ...args, sshPrivateKey: 42 });
// @ts-expect-error dns is "cloudflare" or "none"
new GatewayRegion("b", { ...args, dns: "route53" });
// @ts-expect-error hosts is required
new GatewayRegion("c", { config: args.config });
const region = new GatewayRegion("d", args);
// @ts-expect-error the base domain is a string
const domain: number = region.baseDomain;
export const names: pulumi.Output<string[]> = region.hosts.apply((hs) => hs.map((h) => h.name));
export { domain };
`;

/**
 * A copy of the repository as a developer's checkout holds it (tracked and new files, not
 * ignored ones: no bin/, no dist/), its node_modules linked: the dev dependencies prepack needs.
 */
function checkoutCopy(): string {
  const copy = join(work, "checkout");
  const listed = execFileSync("git", ["ls-files", "-z", "-co", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  for (const file of listed.split("\0")) {
    // node_modules is a symlink in some checkouts, which the ignore pattern (a folder) misses.
    if (file === "" || file === "node_modules") continue;
    mkdirSync(join(copy, file, ".."), { recursive: true });
    cpSync(join(ROOT, file), join(copy, file));
  }
  symlinkSync(join(ROOT, "node_modules"), join(copy, "node_modules"));
  return copy;
}

let tarball = "";
/** What `npm pack --json` printed: prepack's build output must not be in it. */
let packOutput = "";
beforeAll(() => {
  packOutput = execFileSync("npm", ["pack", "--json", "--pack-destination", work], {
    cwd: checkoutCopy(),
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const packed = JSON.parse(packOutput) as { filename: string }[];
  tarball = join(work, packed[0]?.filename ?? "");
  // What a consumer's project has before it adds this package: the SDK its own program
  // imports, and Node's types for TypeScript (the versions this repository is tested with).
  const ours = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  mkdirSync(project, { recursive: true });
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({
      name: "consumer",
      type: "module",
      dependencies: { "@pulumi/pulumi": ours.dependencies["@pulumi/pulumi"] },
      devDependencies: { "@types/node": ours.devDependencies["@types/node"] },
    }),
  );
  execFileSync("npm", ["install", tarball, "--prefer-offline", "--no-audit", "--no-fund"], {
    cwd: project,
    stdio: ["ignore", "ignore", "pipe"],
  });
  writeFileSync(
    join(project, "Pulumi.yaml"),
    "name: consumer\nruntime:\n  name: nodejs\n  options:\n    typescript: false\nmain: index.js\n",
  );
  writeFileSync(join(project, "index.js"), PROGRAM);
  writeFileSync(join(project, "args.json"), JSON.stringify(exampleArgs()));
}, 240_000);

describe("the packed package", () => {
  it("npm pack --json prints JSON only: prepack's build writes to stderr", () => {
    expect(() => JSON.parse(packOutput)).not.toThrow();
    expect(packOutput.trimStart().startsWith("[")).toBe(true);
  });

  it("holds the library, its declarations and the bundle, not the stack program or sources", () => {
    const files = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n");
    expect(files).toContain("package/bin/lib.js");
    expect(files).toContain("package/bin/lib.d.ts");
    expect(files).toContain("package/bin/components/gateway-region.d.ts");
    expect(files).toContain("package/dist/gateway.mjs");
    // `pulumi package add node_modules/cvm-tls-gateway` needs it (docs/component-package.md).
    expect(files).toContain("package/PulumiPlugin.yaml");
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith(".d.ts"))).toEqual([]);
    // Loaded by path when the etcd PKI is made, so no import names it.
    expect(files).toContain("package/bin/components/x509.js");
    // The stack program's own modules: its entry, settings and the global stack's front door.
    const programOnly = /\.map$|bin\/(index|program)\.|front-door|stack-settings|stacks\//;
    expect(files.filter((f) => programOnly.test(f))).toEqual([]);
  });

  it("imports without a Pulumi engine: nothing runs, no stack config is read", () => {
    const out = execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        'const m = await import("cvm-tls-gateway"); console.log(Object.keys(m).sort().join(","))',
      ],
      { cwd: project, encoding: "utf8", env: { PATH: process.env.PATH ?? "" } },
    );
    expect(out.trim()).toBe("GatewayRegion,RegionDns");
  });

  it("a TypeScript consumer compiles against the installed declarations (tsc --strict)", () => {
    // The docs' example as written, and args the declarations must refuse: were they `any`,
    // each @ts-expect-error would itself be an error.
    const docs = readFileSync(join(ROOT, "docs", "component-package.md"), "utf8");
    const example = /```ts\n([\s\S]*?)```/.exec(docs)?.[1];
    expect(example, "docs/component-package.md has a ts example").toBeDefined();
    writeFileSync(join(project, "docs-example.ts"), example ?? "");
    writeFileSync(join(project, "refused.ts"), REFUSED);
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "nodenext",
          moduleResolution: "nodenext",
          strict: true,
          noEmit: true,
          types: ["node"],
        },
        files: ["docs-example.ts", "refused.ts"],
      }),
    );
    // The repository's compiler; every module and type comes from the project's node_modules.
    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.json"], {
      cwd: project,
      encoding: "utf8",
    });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  }, 60_000);

  it("a consumer's program previews the region under the engine, with the package's own bundle", async () => {
    const lines: string[] = [];
    const result = await run({
      projectDir: project,
      stack: "dev",
      mode: "preview",
      config: {},
      secretKeys: [],
      providers: {
        command: commandProvider({ pwd: project, log: () => {} }),
        cloudflare: cloudflareProvider({ zones: "any" }),
      },
      prior: existingState("dev"),
      log: (l) => lines.push(l),
    });
    expect(lines.filter((l) => l.startsWith("error"))).toEqual([]);
    const regs = [...result.deployment.registrations.values()];
    const names = regs.map((r) => `${r.type}::${r.name}`);
    expect(names).toContain(`${GATEWAY_REGION_TYPE}::region`);
    expect(names).toEqual(
      expect.arrayContaining([
        "gateway:index:GatewayHost::region-gw1",
        "gateway:index:GatewayDns::region-dns",
        "pulumi-nodejs:dynamic/gateway:WireGuardKey::region-gw1-wg",
        "pulumi-nodejs:dynamic/gateway:AcmeAccount::region-acme",
        "command:remote:Command::region-gw1-config",
        "command:remote:CopyToRemote::region-gw1-bundle",
      ]),
    );
    // Existing stacks keep their resources: the region says what its URN was.
    const region = regs.find((r) => r.type === GATEWAY_REGION_TYPE);
    expect(region?.aliases).toContain(
      `urn:pulumi:dev::consumer::${GATEWAY_REGION_TYPE_BEFORE}::region`,
    );
    // The bundle is the installed package's, and its hash is computed inside the component.
    const bundle = join(installed, "dist", "gateway.mjs");
    const copy = regs.find((r) => r.name === "region-gw1-bundle");
    expect((copy?.inputs.source as { path?: string } | undefined)?.path).toBe(bundle);
    const sha = createHash("sha256").update(readFileSync(bundle)).digest("hex");
    expect(copy?.inputs.triggers).toEqual([sha]);
    // The Cloudflare token given as an Input (a secret) reaches the host's config, still secret.
    const config = regs.find((r) => r.name === "region-gw1-config")?.inputs.stdin as Record<
      string,
      unknown
    >;
    expect(config[SIG_KEY]).toBe(SECRET_SIG);
    expect(String(config.value)).toContain('cf_api_token = "stand-in-cloudflareApiToken"');
    expect(result.outputs.baseDomain).toBe("app.example.com");
  }, 180_000);
});
