import { readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { tempDir } from "../../../testkit/tmp.js";

const ROOT = new URL("../../../", import.meta.url).pathname;

/**
 * The program's modules compiled to plain ESM JavaScript in a temporary directory laid out like
 * `bin/` (what Pulumi runs after `npm run build`), with the project's node_modules linked in.
 * Dynamic providers are checked there: under vitest, modules are transformed and their
 * functions do not look like what Pulumi serializes in a real run.
 */
export async function compileProgram(): Promise<string> {
  // Also removed after the file when the build fails before the caller has the directory.
  const dir = tempDir("gateway-bin-");
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  const entryPoints = ["components", "gateway-runtime"].flatMap((folder) =>
    readdirSync(join(ROOT, folder), { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
      .map((f) => join(ROOT, folder, f)),
  );
  await build({
    entryPoints,
    outdir: join(dir, "bin"),
    outbase: ROOT,
    format: "esm",
    platform: "node",
    target: "node20",
    bundle: false,
    logLevel: "silent",
  });
  return dir;
}
