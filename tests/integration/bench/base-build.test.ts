import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildBaseGateway } from "../../../bench/lib/build.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const head = spawnSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout.trim();

describe("bench --base", () => {
  it("bundles the bench gateway as of a commit, named after it", async () => {
    const base = await buildBaseGateway(ROOT, "HEAD");
    expect(base.commit).toBe(head);
    expect(base.gateway).toMatch(new RegExp(`base-${head.slice(0, 12)}\\.mjs$`));
    expect(existsSync(base.gateway)).toBe(true);
    // The committed data plane is in it, not a stub.
    expect(readFileSync(base.gateway, "utf8")).toMatch(/var TlsProxy = class/);
  }, 60_000);

  it("names the revision it cannot find", async () => {
    await expect(buildBaseGateway(ROOT, "no-such-rev-xyz")).rejects.toThrow(/no-such-rev-xyz/);
  });
});
