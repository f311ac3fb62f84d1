/**
 * docs/operators-guide.md against the code, where that is cheap: the error codes it names are
 * the runtime's, the stack keys and config paths exist, the inbound ports of its table are the
 * ones the firewall the program writes opens (or drops), and the files it names exist.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FRONT_DOOR_KEY } from "../../../components/front-door-settings.js";
import { STACK_CONFIG_KEY } from "../../../components/stack-config.js";
import { SETTING_KEYS } from "../../../components/stack-settings.js";
import { gatewayConfigSchema } from "../../../gateway-runtime/config/index.js";
import { fieldsOf } from "../../../gateway-runtime/config/walk.js";
import { ROOT } from "../../../tools/plan/plan.js";

const guide = readFileSync(join(ROOT, "docs", "operators-guide.md"), "utf8");
const unique = (items: Iterable<string>) => [...new Set(items)].sort();

/** Every .ts file's text under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => readFileSync(join(e.parentPath, e.name), "utf8"));
}

/** The rows of the markdown table under the heading that starts with `heading`. */
function tableRows(heading: string): string[][] {
  const start = guide.indexOf(`\n## ${heading}`);
  const end = guide.indexOf("\n## ", start + 1);
  return guide
    .slice(start, end === -1 ? undefined : end)
    .split("\n")
    .filter((l) => l.startsWith("| ") && !l.startsWith("|---"))
    .slice(1)
    .map((l) => l.split(" | ").map((c) => c.replace(/^\| |\|$/g, "").trim()));
}

describe("the operator's guide against the code", () => {
  it("names only error codes the runtime has, E_ATTEST_CONFIG among them", () => {
    const runtime = new Set(
      sources(join(ROOT, "gateway-runtime")).flatMap(
        (t) => t.match(/\bE_[A-Z][A-Z0-9_]+\b/g) ?? [],
      ),
    );
    const named = unique(guide.match(/\bE_[A-Z][A-Z0-9_]+\b/g) ?? []);
    expect(named).toContain("E_ATTEST_CONFIG");
    expect(named.filter((code) => !runtime.has(code))).toEqual([]);
  });

  it("names only stack keys the program reads", () => {
    const keys = new Set<string>([
      ...SETTING_KEYS,
      STACK_CONFIG_KEY.replace(/^gateway:/, ""),
      FRONT_DOOR_KEY,
      "sshPrivateKey",
      "etcdClientKeyPem",
    ]);
    const named = unique([...guide.matchAll(/\bgateway:([A-Za-z]+)/g)].map((m) => m[1] as string));
    expect(named.length).toBeGreaterThan(10);
    expect(named.filter((k) => !keys.has(k))).toEqual([]);
  });

  it("names only config paths the schema has (a key, or a section of keys)", () => {
    const paths = fieldsOf(gatewayConfigSchema).map((f) => f.path);
    const named = unique(guide.match(/\bcore(?:\.[a-z0-9_]+)+/g) ?? []);
    expect(named.length).toBeGreaterThan(20);
    const unknown = named.filter((p) => !paths.some((f) => f === p || f.startsWith(`${p}.`)));
    expect(unknown).toEqual([]);
  });

  it("lists as inbound exactly the ports the firewall opens, and the admin port as dropped", () => {
    // The firewall of a host of the committed eu plan (etcd members, so the etcd rule too).
    const plan = JSON.parse(readFileSync(join(ROOT, "plans", "eu.json"), "utf8"));
    const setup = plan.resources.find((r: { name: string }) => r.name === "eu-gw1-setup");
    const rules = String(setup.inputs.create);
    const opened = (verdict: string) =>
      unique(
        [
          ...rules.matchAll(
            new RegExp(`(tcp|udp) dport (\\{ [0-9, ]+ \\}|[0-9]+) ${verdict}`, "g"),
          ),
        ].flatMap((m) =>
          (m[2] as string)
            .replace(/[{}]/g, "")
            .split(",")
            .map((p) => `${p.trim()}/${m[1]}`),
        ),
      ).filter((p) => !["68/udp", "546/udp"].includes(p)); // DHCP replies, not a service
    const rows = tableRows("6. Ports");
    const ports = (direction: RegExp) =>
      unique(
        rows.filter((r) => direction.test(r[1] ?? "")).flatMap((r) => (r[0] ?? "").split(", ")),
      );
    expect(ports(/^inbound/)).toEqual(opened("accept"));
    expect(ports(/^dropped/)).toEqual(opened("counter drop"));
  });

  it("names only files that exist", () => {
    const named = unique(
      [...guide.matchAll(/`([.\w-]+\/[\w./-]+\.(?:ya?ml|ts|sh|json|md))`/g)].map(
        (m) => m[1] as string,
      ),
    ).filter((f) => !f.includes("<") && !f.startsWith("/"));
    expect(named.length).toBeGreaterThan(5);
    const roots = ["", "gateway-runtime"];
    expect(named.filter((f) => !roots.some((r) => existsSync(join(ROOT, r, f))))).toEqual([]);
  });
});
