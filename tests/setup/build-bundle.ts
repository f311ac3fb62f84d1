import { execFileSync } from "node:child_process";

/** Builds dist/gateway.mjs once per test run: CLI and lab tests run the bundle a host would run. */
export default function setup(): void {
  execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
}
