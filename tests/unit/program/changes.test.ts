import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { readBundle } from "../../../components/bundle.js";
import {
  capturePlan,
  diffPlans,
  formatDiff,
  type Plan,
  type PlanDiff,
  ROOT,
  stackConfig,
} from "../../../tools/plan/plan.js";
import { tempDir } from "../../../testkit/tmp.js";

type Json = Record<string, unknown>;
const committed = (stack: string) =>
  JSON.parse(readFileSync(`${ROOT}plans/${stack}.json`, "utf8")) as Plan;

/** The plan of `stack` after changing its config: `edit` gets each key's parsed value. */
async function planWith(stack: string, edit: (config: Record<string, Json | string>) => void) {
  const { config, secretKeys } = stackConfig(stack);
  const parsed: Record<string, Json | string> = {};
  for (const [k, v] of Object.entries(config)) {
    parsed[k] = v.startsWith("{") || v.startsWith("[") ? (JSON.parse(v) as Json) : v;
  }
  edit(parsed);
  const back = Object.fromEntries(
    Object.entries(parsed).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
  );
  return capturePlan(stack, { config: { config: back, secretKeys } });
}
const paths = (d: PlanDiff) => ({
  added: d.added,
  removed: d.removed,
  changed: d.changed.map((c) => [c.resource, c.changes.map((x) => x.path)]),
});
const host = (c: Record<string, Json | string>) =>
  (c["gateway:hosts"] as unknown as Json[])[0] as Json;
const gw = (c: Record<string, Json | string>) =>
  c["gateway:config"] as { core: Record<string, Json> };

describe("a stack change changes only what it should", () => {
  it("a proxy setting: the host config and the restart, nothing else", async () => {
    const after = await planWith("us", (c) => {
      (gw(c).core.proxy as Json).connect_top_n = 5;
    });
    const diff = diffPlans(committed("us"), after);
    expect(paths(diff)).toEqual({
      added: [],
      removed: [],
      changed: [
        ["command:remote:Command::us-gw1-config", ["inputs.triggers[0]"]],
        ["command:remote:Command::us-gw1-restart", ["inputs.triggers[0]"]],
      ],
    });
    const [config, restart] = diff.changed;
    expect(restart?.changes[0]?.after).toBe(config?.changes[0]?.after);
    expect(formatDiff("us", diff).split("\n")[0]).toBe(
      "stack us: 0 to add, 2 to change, 0 to remove",
    );
  });

  it("a host's IPv6 address: only its AAAA records", async () => {
    const after = await planWith("us", (c) => {
      host(c).ipv6 = "2001:db8:10::11";
    });
    const diff = diffPlans(committed("us"), after);
    expect(paths(diff)).toEqual({
      added: [],
      removed: [],
      changed: ["apex", "rpc", "wildcard"].map((n) => [
        `cloudflare:index/dnsRecord:DnsRecord::us-dns-${n}-aaaa-gw1`,
        ["inputs.content"],
      ]),
    });
    expect(diff.changed[0]?.changes[0]).toEqual({
      path: "inputs.content",
      before: '"2001:db8:10::10"',
      after: '"2001:db8:10::11"',
    });
  });

  it("a custom domain's port: only its TXT record", async () => {
    const after = await planWith("us", (c) => {
      (c["gateway:customDomains"] as unknown as Json[])[0] = {
        ...((c["gateway:customDomains"] as unknown as Json[])[0] as Json),
        port: 8443,
      };
    });
    expect(diffPlans(committed("us"), after).changed).toEqual([
      {
        resource: "cloudflare:index/dnsRecord:DnsRecord::us-dns-app-shop-example-org",
        changes: [
          {
            path: "inputs.content",
            before: JSON.stringify('"6dba820630a1689028f66196eb0309011158e3df:443"'),
            after: JSON.stringify('"6dba820630a1689028f66196eb0309011158e3df:8443"'),
          },
        ],
      },
    ]);
  });

  it("WireGuard key rotation: the key, then the host config and the restart", async () => {
    const after = await planWith("eu", (c) => {
      host(c).wgKeyRotation = "2026-11";
    });
    expect(paths(diffPlans(committed("eu"), after))).toEqual({
      added: [],
      removed: [],
      changed: [
        ["command:remote:Command::eu-gw1-config", ["inputs.triggers[0]"]],
        // A restart in a region of several hosts: drained before, gated after (host/rollout.ts).
        ["command:remote:Command::eu-gw1-drain", ["inputs.triggers[0]"]],
        ["command:remote:Command::eu-gw1-gate", ["inputs.triggers[0]"]],
        ["command:remote:Command::eu-gw1-restart", ["inputs.triggers[0]"]],
        ["pulumi-nodejs:dynamic/gateway:WireGuardKey::eu-gw1-wg", ["inputs.rotation"]],
      ],
    });
  });

  it("the admin port: firewall (setup) and config; the unit stays", async () => {
    const after = await planWith("asia", (c) => {
      (gw(c).core.admin as Json).port = 8002;
    });
    const diff = diffPlans(committed("asia"), after);
    expect(paths(diff).changed).toEqual([
      ["command:remote:Command::asia-gw1-config", ["inputs.triggers[0]"]],
      ["command:remote:Command::asia-gw1-restart", ["inputs.triggers[0]"]],
      ["command:remote:Command::asia-gw1-setup", ["inputs.create"]],
    ]);
    expect(formatDiff("asia", diff)).toContain(
      [
        "      inputs.create: text changed",
        '        - \t\ttcp dport 8001 counter drop comment "admin API: this host only"',
        '        + \t\ttcp dport 8002 counter drop comment "admin API: this host only"',
      ].join("\n"),
    );
  });

  it("a new bundle: copied again and the gateway restarts", async () => {
    // The plan records the bundle's hash as BUNDLE_HASH; kept, it is the built bundle's sha256,
    // and exactly the copy's and the restart's triggers change with it.
    const after = await capturePlan("lab", { keepBundleHash: true });
    const sha = readBundle().sha256;
    const changed = diffPlans(committed("lab"), after).changed;
    expect(paths({ added: [], removed: [], changed }).changed).toEqual([
      ["command:remote:Command::lab-gw1-restart", ["inputs.triggers[1]"]],
      ["command:remote:CopyToRemote::lab-gw1-bundle", ["inputs.triggers[0]"]],
    ]);
    expect(changed.map((c) => c.changes[0]?.after)).toEqual([
      JSON.stringify(sha),
      JSON.stringify(sha),
    ]);
  });

  it("gateway:bundle: that file is shipped, taken from the project folder", async () => {
    const dir = mkdtempSync(join(ROOT, ".kept-build-"));
    try {
      writeFileSync(join(dir, "gateway.mjs"), "// a build kept for a rollback\n");
      const sha = readBundle(join(dir, "gateway.mjs")).sha256;
      const relative = `${dir.slice(ROOT.length)}/gateway.mjs`;
      const after = await planWith("lab", (c) => {
        c["gateway:bundle"] = relative;
      });
      const changed = diffPlans(committed("lab"), after).changed;
      expect(changed.map((c) => c.resource).sort()).toEqual([
        "command:remote:Command::lab-gw1-restart",
        "command:remote:CopyToRemote::lab-gw1-bundle",
      ]);
      expect(JSON.stringify(changed)).toContain(sha);
      const copy = after.resources.find((r) => r.name === "lab-gw1-bundle");
      expect(copy?.inputs.source).toEqual({ asset: relative });
      await expect(
        planWith("lab", (c) => {
          c["gateway:bundle"] = "no/such/gateway.mjs";
        }),
      ).rejects.toThrow(`gateway:bundle: ${ROOT}no/such/gateway.mjs cannot be read`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("gateway:dns none: the region's records go, hosts stay", async () => {
    const after = await planWith("eu", (c) => {
      c["gateway:dns"] = "none";
    });
    const diff = diffPlans(committed("eu"), after);
    expect(diff.changed).toEqual([]);
    expect(diff.added).toEqual([]);
    expect(diff.removed).toEqual(
      committed("eu")
        .resources.filter((r) => r.name.startsWith("eu-dns"))
        .map((r) => `${r.type}::${r.name}`),
    );
    // Three hosts' A and AAAA for apex, wildcard and RPC, the CAA pair, a TXT, the component.
    expect(diff.removed).toHaveLength(3 * 6 + 2 + 1 + 1);
  });
});

describe("npm run plan -- --diff", () => {
  const run = promisify(execFile);
  const plan = (args: string[]) =>
    run(process.execPath, ["--import", "tsx", "tools/plan/plan.ts", ...args], { cwd: ROOT }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );

  it("prints exactly the changed setting and exits 1; 0 when the stack matches its plan", async () => {
    const stacks = tempDir("stacks-");
    cpSync(`${ROOT}stacks`, stacks, { recursive: true });
    const file = join(stacks, "Pulumi.us.yaml");
    writeFileSync(
      file,
      readFileSync(file, "utf8").replace("      port: 443\n", "      port: 9443\n"),
    );
    expect(await plan(["--diff", "--stack", "us", "--stacks", stacks])).toEqual({
      code: 1,
      stdout: [
        "stack us: 0 to add, 1 to change, 0 to remove",
        "  ~ cloudflare:index/dnsRecord:DnsRecord::us-dns-app-shop-example-org",
        '      inputs.content: "\\"6dba820630a1689028f66196eb0309011158e3df:443\\"" => "\\"6dba820630a1689028f66196eb0309011158e3df:9443\\""',
        "",
      ].join("\n"),
    });
    expect(await plan(["--diff", "--stack", "eu", "--stack", "lab"])).toEqual({
      code: 0,
      stdout: "stack eu: no changes\nstack lab: no changes\n",
    });
  }, 30_000);
});
