/**
 * Builds what the bench runs: the bench entries bundled with the gateway's own esbuild options
 * (`scripts/bundle-options.mjs`), and the LD_PRELOAD shim for the load generators, into
 * `bench/.build/`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { BUNDLE_OPTIONS } from "../../scripts/bundle-options.mjs";

export interface BuildOutput {
  readonly gateway: string;
  readonly idleClient: string;
  readonly routeBench: string;
  readonly nodeFloor: string;
  readonly shim: string;
}

const ENTRIES = ["gateway-bench", "idle-client", "route-bench", "node-floor"] as const;

export async function buildBench(root: string): Promise<BuildOutput> {
  const outdir = join(root, "bench", ".build");
  mkdirSync(outdir, { recursive: true });
  await build({
    ...BUNDLE_OPTIONS,
    entryPoints: ENTRIES.map((name) => join(root, "bench", `${name}.ts`)),
    outdir,
    outExtension: { ".js": ".mjs" },
  });
  const shim = join(outdir, "tlsshim.so");
  const cc = spawnSync(
    "gcc",
    [
      "-O2",
      "-Wall",
      "-Wextra",
      "-Werror",
      "-shared",
      "-fPIC",
      "-o",
      shim,
      join(root, "bench", "lib", "tlsshim.c"),
      "-ldl",
    ],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (cc.status !== 0) throw new Error(`gcc tlsshim.c failed: ${cc.stderr}${cc.error ?? ""}`);
  return {
    gateway: join(outdir, "gateway-bench.mjs"),
    idleClient: join(outdir, "idle-client.mjs"),
    routeBench: join(outdir, "route-bench.mjs"),
    nodeFloor: join(outdir, "node-floor.mjs"),
    shim,
  };
}

/**
 * What the soak (s) runs: the gateway as `scripts/build.mjs` bundles it (`gateway run`, the
 * bundle a host runs) and the soak's traffic client, into `bench/.build/`.
 */
export async function buildSoak(root: string): Promise<{ gateway: string; traffic: string }> {
  const outdir = join(root, "bench", ".build");
  const gateway = join(outdir, "gateway.mjs");
  const traffic = join(outdir, "soak-traffic.mjs");
  await build({
    ...BUNDLE_OPTIONS,
    entryPoints: [join(root, "gateway-runtime", "main.ts")],
    outfile: gateway,
  });
  await build({
    ...BUNDLE_OPTIONS,
    entryPoints: [join(root, "bench", "soak", "traffic.ts")],
    outfile: traffic,
  });
  return { gateway, traffic };
}

/**
 * Our bench gateway as of another commit (`--base <rev>`), so a change is measured against
 * the code before it in the same rounds: `git archive` of `rev` into a folder under the system's
 * temp dir (outside this tree, so tsc, biome and vitest never see the copy; kept for the next
 * run), with this tree's `node_modules` linked in, bundled with this tree's options. Returns the
 * bundle and the commit it was built from.
 */
export async function buildBaseGateway(
  root: string,
  rev: string,
): Promise<{ readonly gateway: string; readonly commit: string }> {
  const git = (args: string[], input?: Buffer): Buffer => {
    const r = spawnSync("git", args, {
      cwd: root,
      input,
      maxBuffer: 512 * 2 ** 20,
      timeout: 60_000,
    });
    if (r.status !== 0) {
      throw new Error(`git ${args.join(" ")}: ${r.stderr?.toString().trim() || r.error}`);
    }
    return r.stdout;
  };
  const commit = git(["rev-parse", "--verify", `${rev}^{commit}`])
    .toString()
    .trim();
  const tree = join(tmpdir(), `gw-bench-base-${commit}`);
  if (!existsSync(join(tree, "bench", "gateway-bench.ts"))) {
    rmSync(tree, { recursive: true, force: true });
    mkdirSync(tree, { recursive: true });
    const tar = git(["archive", "--format=tar", commit]);
    const x = spawnSync("tar", ["-x", "-C", tree], { input: tar, timeout: 60_000 });
    if (x.status !== 0) throw new Error(`tar -x of ${commit}: ${x.stderr?.toString()}`);
    if (!existsSync(join(tree, "bench", "gateway-bench.ts"))) {
      throw new Error(`--base ${rev}: commit ${commit} has no bench/gateway-bench.ts`);
    }
  }
  // Linked anew each time: a copy kept from another checkout would point at its node_modules,
  // which may be gone.
  const modules = join(tree, "node_modules");
  rmSync(modules, { force: true });
  symlinkSync(join(root, "node_modules"), modules, "dir");
  const gateway = join(root, "bench", ".build", `base-${commit.slice(0, 12)}.mjs`);
  await build({
    ...BUNDLE_OPTIONS,
    entryPoints: [join(tree, "bench", "gateway-bench.ts")],
    outfile: gateway,
  });
  return { gateway, commit };
}
