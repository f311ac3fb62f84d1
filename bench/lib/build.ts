/**
 * Builds what the bench runs: the bench entries bundled with the gateway's own esbuild options
 * (`scripts/bundle-options.mjs`), and the LD_PRELOAD shim for the load generators, into
 * `bench/.build/`.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
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
