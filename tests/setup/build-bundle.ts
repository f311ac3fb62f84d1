import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";

/**
 * Builds once per test run what a deployer builds with `npm run build`: the program compiled to
 * bin/ (the recording engine runs it as Pulumi would) and dist/gateway.mjs (the bundle CLI and
 * lab tests run, as a host does).
 */
export default function setup(): void {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", "tsconfig.program.json"], { stdio: "inherit" });
  execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
}
