/**
 * GatewayRegion as Pulumi's component analyzer sees it (what `pulumi package add` of this
 * repository makes of it for YAML, Python or Go programs), and the YAML example against that
 * schema: every property it sets is an input of the right kind, every required one is set.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { GATEWAY_REGION_TYPE } from "../../../components/gateway-region.js";
import { componentSchema, type PackageSchema, ROOT } from "../../../tools/package/schema.js";

let schema: PackageSchema;
beforeAll(() => {
  schema = componentSchema();
}, 120_000);

const region = () => {
  const found = schema.resources[GATEWAY_REGION_TYPE];
  if (!found) throw new Error(`no ${GATEWAY_REGION_TYPE} in ${Object.keys(schema.resources)}`);
  return found;
};

describe("the component analyzer on this package", () => {
  it("gives the schema committed in docs/component-schema.json, in full", () => {
    // Regenerate with: npx tsx tools/package/schema.ts > docs/component-schema.json, then
    // npx biome check --write docs/component-schema.json (the test compares values, not text)
    const committed = JSON.parse(readFileSync(join(ROOT, "docs/component-schema.json"), "utf8"));
    expect(schema).toEqual(committed);
  });

  it("names the package after package.json and the type token after it", () => {
    expect(schema.name).toBe("cvm-tls-gateway");
    expect(Object.keys(schema.resources)).toEqual([GATEWAY_REGION_TYPE]);
    expect(region().isComponent).toBe(true);
  });

  it("inputs: the config and hosts plain (they shape resources), the secrets Inputs", () => {
    const inputs = region().inputProperties;
    expect(region().requiredInputs).toEqual(["config", "hosts"]);
    expect(inputs.config).toMatchObject({
      type: "object",
      additionalProperties: { $ref: "pulumi.json#/Any" },
      plain: true,
    });
    expect(inputs.hosts).toMatchObject({
      type: "array",
      items: { $ref: "#/types/cvm-tls-gateway:index:RegionHost" },
      plain: true,
    });
    expect(inputs.dns).toMatchObject({ $ref: "#/types/cvm-tls-gateway:index:RegionDns" });
    for (const secret of ["cloudflareApiToken", "adminAuthToken", "sshPrivateKey"]) {
      expect(inputs[secret], secret).toMatchObject({ type: "string", optional: true });
      expect(inputs[secret]?.plain, secret).toBeUndefined();
    }
    expect(Object.keys(inputs).sort()).toEqual(
      [
        "acmeCaPem",
        "adminAuthToken",
        "adminTokenRotation",
        "attestationCaPem",
        "bundlePath",
        "bundleSha256",
        "caaIssuer",
        "canaryAppId",
        "cloudflareApiToken",
        "config",
        "configSource",
        "customDomains",
        "dns",
        "dnsZone",
        "etcdCaPem",
        "etcdClientCertPem",
        "etcdClientKeyPem",
        "hosts",
        "nodeMajor",
        "rfc2136TsigSecret",
        "sshPrivateKey",
        "sshUser",
      ].sort(),
    );
  });

  it("outputs, and the types the args refer to", () => {
    expect(region().required).toEqual(["baseDomain", "hosts", "rpcDomain"]);
    expect(Object.keys(region().properties).sort()).toEqual([
      "acmeAccountUrl",
      "adminToken",
      "baseDomain",
      "hosts",
      "rpcDomain",
    ]);
    expect(schema.types["cvm-tls-gateway:index:RegionDns"]?.enum?.map((e) => e.value)).toEqual([
      "cloudflare",
      "none",
    ]);
    expect(schema.types["cvm-tls-gateway:index:RegionHost"]?.required).toEqual(["address", "name"]);
    expect(
      Object.keys(schema.types["cvm-tls-gateway:index:RegionHostOutputs"]?.properties ?? {}),
    ).toEqual(["name", "address", "wgPublicKey", "wgEndpoint", "wgIp"]);
  });
});

describe("the plugin host's view of the package", () => {
  it("loads package.json main (the library, which runs nothing) and finds GatewayRegion alone", () => {
    // What @pulumi/pulumi/cmd/run-plugin does with the plugin's folder.
    const require = createRequire(import.meta.url);
    const { getPulumiComponents } = require("@pulumi/pulumi/provider/experimental/provider.js");
    const components = getPulumiComponents(require(ROOT)) as { name: string }[];
    expect(components.map((c) => c.name)).toEqual(["GatewayRegion"]);
  });
});

describe("examples/yaml: a YAML program using the component", () => {
  const file = join(ROOT, "examples", "yaml", "Pulumi.yaml");
  const program = parseYaml(readFileSync(file, "utf8")) as {
    runtime: string;
    packages: Record<string, string>;
    resources: Record<string, { type: string; properties: Record<string, unknown> }>;
  };

  it("adds this package by path, as `pulumi package add ../..` writes it", () => {
    expect(program.runtime).toBe("yaml");
    expect(program.packages).toEqual({ "cvm-tls-gateway": "../.." });
  });

  it("sets only inputs of the schema, every required one, plain ones without expressions", () => {
    const uses = Object.values(program.resources).filter((r) => r.type === GATEWAY_REGION_TYPE);
    expect(uses).toHaveLength(1);
    const { inputProperties, requiredInputs } = region();
    for (const { properties } of uses) {
      for (const key of requiredInputs) expect(properties, key).toHaveProperty(key);
      for (const [key, value] of Object.entries(properties)) {
        const input = inputProperties[key];
        expect(input, `${key} is an input of ${GATEWAY_REGION_TYPE}`).toBeDefined();
        // A plain input takes no output of another resource: no ${...} anywhere in it.
        if (input?.plain) expect(JSON.stringify(value), key).not.toContain("${");
      }
      const hostKeys = Object.keys(
        schema.types["cvm-tls-gateway:index:RegionHost"]?.properties ?? {},
      );
      for (const host of properties.hosts as Record<string, unknown>[]) {
        for (const key of Object.keys(host)) expect(hostKeys, `hosts[].${key}`).toContain(key);
      }
      const dns = schema.types["cvm-tls-gateway:index:RegionDns"]?.enum?.map((e) => e.value);
      expect(dns).toContain(properties.dns);
    }
  });
});
