import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { buildBaseGateway } from "../../../bench/lib/build.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const head = spawnSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout.trim();
// buildBaseGateway keeps the commit's tree in the temp dir for later bench runs; one these tests
// made is theirs to remove (a kept one a bench run made stays).
const tree = join(tmpdir(), `gw-bench-base-${head}`);
const kept = existsSync(tree);
afterAll(() => {
  if (!kept) rmSync(tree, { recursive: true, force: true });
});

describe("bench --base", () => {
  it("bundles the bench gateway as of a commit, named after it", async () => {
    const base = await buildBaseGateway(ROOT, "HEAD");
    expect(base.commit).toBe(head);
    expect(base.gateway).toMatch(new RegExp(`base-${head.slice(0, 12)}\\.mjs$`));
    expect(existsSync(base.gateway)).toBe(true);
    // The committed data plane is in it, not a stub.
    expect(readFileSync(base.gateway, "utf8")).toMatch(/var TlsProxy = class/);
  }, 60_000);

  it("builds again from a kept copy whose node_modules link points at a checkout that is gone", async () => {
    await buildBaseGateway(ROOT, "HEAD");
    const link = join(tree, "node_modules");
    rmSync(link, { force: true });
    symlinkSync(join(tmpdir(), "gw-bench-no-such-checkout", "node_modules"), link, "dir");
    const again = await buildBaseGateway(ROOT, "HEAD");
    expect(readFileSync(again.gateway, "utf8")).toMatch(/var TlsProxy = class/);
  }, 60_000);

  it("names the revision it cannot find", async () => {
    await expect(buildBaseGateway(ROOT, "no-such-rev-xyz")).rejects.toThrow(/no-such-rev-xyz/);
  });
});
