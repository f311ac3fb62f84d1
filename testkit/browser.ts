/**
 * Debian's headless Chromium, driven by playwright-core, for the dashboard's browser tests.
 * Without chromium this throws: a skipped browser test would look like a passing one.
 */
import { execFileSync } from "node:child_process";
import { type Browser, chromium } from "playwright-core";

function chromiumPath(): string {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("chromium is not installed (Debian: apt-get install chromium; .ci/run does)");
  }
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Root in CI: Chromium's sandbox needs user namespaces it may not have there.
    args: ["--no-sandbox"],
  });
}
