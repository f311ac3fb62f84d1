// The Node line the gateway hosts run: `.node-version` holds the exact version, and every
// other pin (engines, the bundle's target, the hosts' NodeSource major, @types/node, CI) is its
// major. `npm test` runs through scripts/node.sh, so the suite itself runs on that version.
import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { NODE_MAJOR } from "../../../host/layout.js";
import { BUNDLE_OPTIONS } from "../../../scripts/bundle-options.mjs";
import { ROOT } from "../../../tools/plan/plan.js";
import { tempDir } from "../../../testkit/tmp.js";

const version = readFileSync(`${ROOT}.node-version`, "utf8").trim();
const major = Number(version.split(".")[0]);
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
  scripts: Record<string, string>;
};

describe("the Node line", () => {
  it("pins one exact version whose major every other pin uses", () => {
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(major).toBe(NODE_MAJOR);
    expect(pkg.engines.node).toBe(`>=${major}`);
    expect(BUNDLE_OPTIONS.target).toBe(`node${major}`);
    expect(pkg.devDependencies["@types/node"]?.split(".")[0]).toBe(String(major));
  });

  it("this suite runs on it, with its OpenSSL 3.5", () => {
    expect(process.versions.node).toBe(version);
    expect(process.versions.openssl).toMatch(/^3\.([5-9]|\d\d)\./);
  });

  it("npm test, npm run lab, npm run bench and .ci/run go through scripts/node.sh", () => {
    for (const script of ["test", "lab", "bench"])
      expect(pkg.scripts[script]).toMatch(/^bash scripts\/node\.sh /);
    expect(readFileSync(`${ROOT}.ci/run`, "utf8")).toContain("scripts/node.sh");
  });

  it("the GitHub workflows set up the same version", () => {
    const dir = `${ROOT}.github/workflows/`;
    for (const file of readdirSync(dir)) {
      const jobs = (parse(readFileSync(dir + file, "utf8")) as { jobs: Record<string, unknown> })
        .jobs;
      for (const job of Object.values(jobs) as { steps?: { uses?: string; with?: object }[] }[]) {
        for (const step of job.steps ?? []) {
          if (!step.uses?.startsWith("actions/setup-node")) continue;
          expect(step.with, file).toMatchObject({ "node-version-file": ".node-version" });
          expect(step.with, file).not.toHaveProperty("node-version");
        }
      }
    }
  });

  it("scripts/node.sh reuses a cached copy without asking the registry", async () => {
    const cache = tempDir("node-cache-");
    const bin = join(cache, `${version}-${process.arch}`, "bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "node"), `#!/bin/sh\necho v${version}\n`);
    chmodSync(join(bin, "node"), 0o755);
    // No npm on this PATH: a fetch would fail.
    const env = { PATH: "/usr/bin:/bin", CVM_GATEWAY_NODE_CACHE: cache };
    const run = promisify(execFile);
    const printed = await run("bash", [`${ROOT}scripts/node.sh`], { env });
    expect(printed.stdout.trim()).toBe(bin);
    const ran = await run("bash", [`${ROOT}scripts/node.sh`, "sh", "-c", "command -v node"], {
      env,
    });
    expect(ran.stdout.trim()).toBe(join(bin, "node"));
  });
});
