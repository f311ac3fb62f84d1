import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runCommand } from "../../../gateway-runtime/cli/run.js";
import {
  gatewayConfigSchema,
  loadConfigFileNoting,
  noEffectKeys,
  noEffectKeysSet,
  parseGatewayConfig,
  toConfigObject,
  withoutNoEffectKeys,
} from "../../../gateway-runtime/config/index.js";
import { END, START } from "../../../scripts/readme-config.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { tempFile as tempFileIn } from "../../../testkit/tmp.js";
import { SEED_TOML } from "../../helpers/seed.js";

// The keys checked by hand against gateway-runtime/ (nothing there reads them); a key marked or
// unmarked by mistake fails here.
const EXPECTED = [
  "workers",
  "max_blocking",
  "core.set_ulimit",
  "core.run_in_dstack",
  "core.certbot.domain",
  "core.sync.enabled",
  "core.sync.interval",
  "core.sync.broadcast_interval",
  "core.sync.timeout",
  "core.sync.my_url",
  "core.sync.bootnode",
  "core.recycle.node_timeout",
];

const tempFile = (name: string, text: string) => tempFileIn("no-effect-", name, text);

describe("keys that do nothing", () => {
  it("are exactly the dstack keys nothing reads, each with a reason", () => {
    expect(noEffectKeys().map((k) => k.path)).toEqual(EXPECTED);
    for (const key of noEffectKeys()) expect(key.reason.length).toBeGreaterThan(20);
    // The proxy's process count is a real setting, unlike dstack's top-level `workers`.
    expect(noEffectKeys().map((k) => k.path)).not.toContain("core.proxy.workers");
  });

  it("the seed still loads, and sets every one of them", () => {
    const { config, noEffect } = loadConfigFileNoting(SEED_TOML);
    expect(config.core.proxy.base_domain).toBe("app.example.com");
    expect(noEffect.map((k) => k.path)).toEqual(EXPECTED);
  });

  it("core.sync defaults off: nothing exists to enable", () => {
    const config = parseGatewayConfig(minimalConfig(), "minimal");
    expect(config.core.sync.enabled).toBe(false);
    expect(gatewayConfigSchema.parse(minimalConfig()).core.sync.enabled).toBe(false);
  });

  it("require nothing: sync enabled without peers, certbot without a domain", () => {
    let raw = withKey(minimalConfig(), "core.sync.enabled", true);
    raw = withKey(raw, "core.certbot.enabled", true);
    raw = withKey(raw, "core.certbot.cf_api_token", "t");
    raw = withKey(raw, "core.certbot.cf_zone_id", "z");
    expect(() => parseGatewayConfig(raw, "test")).not.toThrow();
  });

  it("count as set when present in the file, whatever the value", () => {
    expect(noEffectKeysSet(minimalConfig())).toEqual([]);
    let raw = withKey(minimalConfig(), "core.run_in_dstack", true); // the default: still set
    raw = withKey(raw, "core.sync.enabled", false);
    raw = withKey(raw, "workers", 8);
    expect(noEffectKeysSet(raw).map((k) => k.path)).toEqual([
      "workers",
      "core.run_in_dstack",
      "core.sync.enabled",
    ]);
  });

  it("are left out of what the program writes to hosts, which still parses", () => {
    const seed = loadConfigFileNoting(SEED_TOML).config;
    const written = withoutNoEffectKeys(toConfigObject(seed));
    expect(noEffectKeysSet(written)).toEqual([]);
    expect(() => parseGatewayConfig(written, "written")).not.toThrow();
    expect(noEffectKeysSet(toConfigObject(seed)).length).toBe(EXPECTED.length);
  });

  it("are marked in the README table with their reason, and no other key is", () => {
    const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
    const rows = readme
      .slice(readme.indexOf(START), readme.indexOf(END))
      .split("\n")
      .filter((l) => l.startsWith("| `"));
    const marked = rows.filter((l) => l.includes("**No effect:**"));
    expect(marked.map((l) => /^\| `([^`]+)`/.exec(l)?.[1])).toEqual(EXPECTED);
    for (const key of noEffectKeys()) {
      expect(marked.find((l) => l.startsWith(`| \`${key.path}\` `))).toContain(
        `**No effect:** ${key.reason}.`,
      );
    }
  });
});

describe("gateway run with keys that do nothing", () => {
  afterEach(() => vi.restoreAllMocks());

  it("warns once per key the file sets, naming it and why, and not for the others", async () => {
    let raw = withKey(minimalConfig(), "workers", 8);
    raw = withKey(raw, "core.sync.enabled", false);
    raw = withKey(raw, "core.recycle.node_timeout", "10m");
    raw = withKey(raw, "core.set_ulimit", true);
    const file = tempFile("gateway.json", JSON.stringify(raw));
    const lines: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      return true;
    });
    // A part that fails at once: the run stops right after the start-up messages.
    const failing = {
      name: "failing part",
      enabled: () => true,
      start: async () => {
        throw new Error("stop here");
      },
    };
    expect(await runCommand(file, [failing])).toBe(1);
    const warnings = lines
      .map((l) => JSON.parse(l) as { level: number; key?: string; msg: string })
      .filter((l) => l.level === 40);
    const set = ["workers", "core.set_ulimit", "core.sync.enabled", "core.recycle.node_timeout"];
    expect(warnings.map((w) => w.key)).toEqual(set);
    for (const [i, path] of set.entries()) {
      const reason = noEffectKeys().find((k) => k.path === path)?.reason;
      expect(warnings[i]?.msg).toBe(`${path} has no effect: ${reason}`);
    }
  });
});
