import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { loadStackFile } from "../../../components/stack-config.js";
import { tempDir } from "../../../testkit/tmp.js";
import {
  ConfigError,
  loadConfigFile,
  noEffectKeysSet,
  serializeConfig,
} from "../../../gateway-runtime/config/index.js";
import { generateWgKeyPair } from "../../../gateway-runtime/keys/wireguard.js";
import { withKey } from "../../../testkit/config.js";

const stacksDir = new URL("../../../stacks/", import.meta.url).pathname;
const allStackFiles = readdirSync(stacksDir).filter((f) => /^Pulumi\.[a-z]+\.yaml$/.test(f));
/** Region stacks: every stack but the global one, whose `gateway:frontDoor` replaces a region. */
const stackFiles = allStackFiles.filter(
  (f) => !readFileSync(join(stacksDir, f), "utf8").includes("gateway:frontDoor:"),
);

function problemLines(error: unknown): string {
  expect(error).toBeInstanceOf(ConfigError);
  return (error as ConfigError).message.split("\n").slice(1).join("\n");
}

describe("stack files", () => {
  it("are the three regions and the lab, and the global front door", () => {
    expect(allStackFiles.filter((f) => !stackFiles.includes(f))).toEqual(["Pulumi.global.yaml"]);
    expect(stackFiles.sort()).toEqual([
      "Pulumi.asia.yaml",
      "Pulumi.eu.yaml",
      "Pulumi.lab.yaml",
      "Pulumi.us.yaml",
    ]);
  });

  it.each(stackFiles)("%s has a valid gateway:config with secrets kept encrypted", (file) => {
    const config = loadStackFile(join(stacksDir, file));
    const region = file.split(".")[1];
    expect(config.core.proxy.base_domain).toBe(
      region === "lab" ? "gw.lab.test" : `${region}.gw.example.com`,
    );
    // A committed stack is an example operators copy: it sets nothing that does nothing.
    const raw = parse(readFileSync(join(stacksDir, file), "utf8")).config["gateway:config"];
    expect(noEffectKeysSet(raw).map((k) => k.path)).toEqual([]);
    const secret = config.core.certbot.cf_api_token ?? config.core.certbot.rfc2136.tsig_secret;
    expect(secret?.encrypted).toBe(true);
    expect(() => secret?.reveal()).toThrow("still encrypted");
  });

  it("a bad stack config fails with the same problems the runtime prints for the same keys", () => {
    const dir = tempDir("stack-");
    const bad = withKey(
      withKey(
        {
          core: {
            rpc_domain: "rpc.x.example",
            auth: { enabled: false },
            sync: { enabled: false },
            certbot: { enabled: false },
            proxy: { base_domain: "x.example" },
          },
        },
        "core.proxy.listen_port",
        70000,
      ),
      "core.proxy.timeouts.connect",
      "5 seconds",
    );
    const stackFile = join(dir, "Pulumi.bad.yaml");
    writeFileSync(stackFile, stringify({ config: { "gateway:config": bad } }));
    const runtimeFile = join(dir, "gateway.json");
    let stackError: unknown;
    let runtimeError: unknown;
    try {
      loadStackFile(stackFile);
    } catch (error) {
      stackError = error;
    }
    // The runtime sees the same keys plus what the program generates (here: valid stand-ins).
    const keys = generateWgKeyPair();
    const full = withKey(
      withKey(
        withKey(bad, "core.wg.private_key", keys.privateKey),
        "core.wg.public_key",
        keys.publicKey,
      ),
      "core.wg.endpoint",
      "192.0.2.1:51820",
    );
    writeFileSync(runtimeFile, serializeConfig(full, "json"));
    try {
      loadConfigFile(runtimeFile);
    } catch (error) {
      runtimeError = error;
    }
    expect(problemLines(stackError)).toBe(
      '  - core.proxy.listen_port: expected a port number 1-65535, got 70000\n  - core.proxy.timeouts.connect: expected a duration like "5s", "10m", "1h" or "10d", got "5 seconds"',
    );
    expect(problemLines(runtimeError)).toBe(problemLines(stackError));
  });

  it("a stack file without gateway:config says so", () => {
    const dir = tempDir("stack-");
    const stackFile = join(dir, "Pulumi.empty.yaml");
    writeFileSync(stackFile, "config:\n  aws:region: us-east-1\n");
    expect(() => loadStackFile(stackFile)).toThrow(
      "gateway:config: is required in the stack's config",
    );
  });
});
