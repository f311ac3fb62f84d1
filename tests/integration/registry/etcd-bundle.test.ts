/**
 * The etcd client works from a bundle: etcd3 reads its .proto files from beside its source,
 * which a one-file bundle does not have; the build inlines them (scripts/etcd-proto.mjs). The
 * same entry bundled without that step fails, so this test sees the difference.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLE_OPTIONS } from "../../../scripts/bundle-options.mjs";
import { type EtcdCluster, startEtcdCluster } from "../../../testkit/etcd.js";

let etcd: EtcdCluster;
const dir = mkdtempSync(join(tmpdir(), "gw-etcd-bundle-"));

beforeAll(async () => {
  etcd = await startEtcdCluster(1);
}, 30_000);
afterAll(async () => {
  await etcd?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function bundleAndRun(name: string, plugins = BUNDLE_OPTIONS.plugins) {
  const outfile = join(dir, `${name}.mjs`);
  await build({
    ...BUNDLE_OPTIONS,
    plugins: plugins ?? [],
    entryPoints: [join(import.meta.dirname, "etcd-bundle-entry.ts")],
    outfile,
  });
  const endpoint = (etcd.endpoints[0] as string).replace("http://", "");
  return spawnSync(process.execPath, [outfile, endpoint], {
    cwd: dir,
    encoding: "utf8",
    timeout: 20_000,
  });
}

describe("etcd client in a bundle", () => {
  it("registers through etcd from a bundle with nothing beside it", async () => {
    const run = await bundleAndRun("with-protos");
    expect(run.stderr).toBe("");
    expect(JSON.parse(run.stdout)).toMatchObject({ instanceId: "i1", ip: "10.4.0.32" });
  }, 30_000);

  it("without the inlined protos the same bundle fails at its first etcd use", async () => {
    const run = await bundleAndRun("without-protos", []);
    expect(run.status).not.toBe(0);
    // etcd3's `${__dirname}/../proto/rpc.proto`: no __dirname in an ES module bundle (and no
    // proto directory beside it if there were one).
    expect(run.stderr).toMatch(/__dirname|rpc\.proto/);
  }, 30_000);
});
