import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { planMocks } from "../../helpers/pulumi-mocks.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";

// Mocks must be in place before the program builds anything.
beforeAll(() => {
  // The plan's mocks: deterministic WireGuard keys and ACME account, like a real run's outputs.
  pulumi.runtime.setMocks(planMocks("us"), "cvm-tls-gateway", "us", false);
});

async function program() {
  const { gatewayProgram } = await import("../../../program.js");
  return () => gatewayProgram({ bundle: { path: "dist/gateway.mjs", sha256: "0".repeat(64) } });
}

function useStackConfig(raw: unknown): void {
  pulumi.runtime.setAllConfig({
    "gateway:config": JSON.stringify(raw),
    "gateway:hosts": JSON.stringify([{ name: "gw1", address: "192.0.2.1" }]),
    "gateway:dns": "none",
  });
}

describe("the Pulumi program reads gateway:config through the runtime's schema", () => {
  it("accepts a valid stack config, with the generated WireGuard keys left out", async () => {
    let raw = minimalConfig();
    // A config whose gateway starts: it reads no file the program does not ship (certbot
    // writes the certificate, tdx attestation needs no CA file).
    for (const [key, value] of Object.entries({
      "core.wg.private_key": undefined,
      "core.wg.public_key": undefined,
      "core.wg.endpoint": undefined,
      "core.certbot": {
        enabled: true,
        domain: "*.app.test.example",
        cf_api_token: "t",
        cf_zone_id: "z",
        contact_email: "ops@test.example",
      },
      "core.attestation": { mode: "tdx", pccs_url: "https://pccs.test.example" },
    }))
      raw = withKey(raw, key, value);
    useStackConfig(raw);
    const outputs = (await program())();
    expect([outputs.baseDomain, outputs.rpcDomain]).toEqual([
      "app.test.example",
      "gateway.test.example",
    ]);
    expect(outputs.acmeAccountUrl).toBeDefined();
    expect(outputs.hosts.map((h) => [h.name, h.address, h.wireguardEndpoint])).toEqual([
      ["gw1", "192.0.2.1", "192.0.2.1:51820"],
    ]);
  });

  it("fails a bad stack config with a RunError carrying the runtime's problem list", async () => {
    const bad = withKey(
      withKey(minimalConfig(), "core.proxy.listen_port", 8000),
      "core.admin.prot",
      1,
    );
    useStackConfig(bad);
    let thrown: unknown;
    try {
      (await program())();
    } catch (error) {
      thrown = error;
    }
    expect(pulumi.RunError.isInstance(thrown)).toBe(true);
    let runtimeMessage = "";
    try {
      parseGatewayConfig(bad, "gateway.toml");
    } catch (error) {
      runtimeMessage = (error as Error).message;
    }
    const problems = (message: string) => message.split("\n").slice(1);
    expect(problems((thrown as Error).message)).toEqual(problems(runtimeMessage));
    expect(problems(runtimeMessage)).toEqual([
      '  - core.admin.prot: unknown key (did you mean "port"?)',
      "  - core.proxy.listen_port: port 8000 is also used by port, got 8000",
    ]);
    expect((thrown as Error).message.split("\n")[0]).toBe(
      "invalid gateway config (stack us gateway:config), 2 problem(s):",
    );
  });

  it("refuses a stack that sets keys the program generates for each host", async () => {
    useStackConfig(minimalConfig());
    await expect(async () => (await program())()).rejects.toThrow(
      "invalid gateway config (stack us gateway:config): the program generates core.wg.private_key, core.wg.public_key, core.wg.endpoint for each host; remove them from the stack",
    );
  });

  it("fails bad program settings with a RunError listing each problem", async () => {
    const raw = withKey(
      withKey(minimalConfig(), "core.wg.private_key", undefined),
      "core.wg.public_key",
      undefined,
    );
    pulumi.runtime.setAllConfig({
      "gateway:config": JSON.stringify(withKey(raw, "core.wg.endpoint", undefined)),
      "gateway:hosts": JSON.stringify([
        { name: "GW 1", address: "2001:db8::1" },
        { name: "gw2", address: "192.0.2.2", sshPort: 0 },
      ]),
      "gateway:dns": "route53",
    });
    let thrown: unknown;
    try {
      (await program())();
    } catch (error) {
      thrown = error;
    }
    expect(pulumi.RunError.isInstance(thrown)).toBe(true);
    expect((thrown as Error).message.split("\n")).toEqual([
      "invalid program settings (stack us), 4 problem(s):",
      "  - gateway:hosts.0.name: expected a short lowercase name like gw1",
      "  - gateway:hosts.0.address: expected an IPv4 address",
      "  - gateway:hosts.1.sshPort: Too small: expected number to be >=1",
      '  - gateway:dns: Invalid option: expected one of "cloudflare"|"none"',
    ]);
  });

  it("takes *.<parent> custom domains (the gateway's wildcard record) and no other wildcard", async () => {
    const { parseStackSettings } = await import("../../../components/stack-settings.js");
    const settings = (domain: string) =>
      parseStackSettings(
        {
          hosts: [{ name: "gw1", address: "192.0.2.1" }],
          customDomains: [{ domain, appId: "ab", port: 443, zone: "example.org" }],
        },
        "test",
      );
    expect(settings("*.shops.example.org").customDomains[0]?.domain).toBe("*.shops.example.org");
    for (const bad of ["a.*.example.org", "*.org", "*shops.example.org"]) {
      expect(() => settings(bad)).toThrow(
        "gateway:customDomains.0.domain: expected a DNS name, or *.<DNS name>",
      );
    }
  });

  it("fails when the stack has no gateway:config at all", async () => {
    pulumi.runtime.setAllConfig({});
    await expect(async () => (await program())()).rejects.toThrow(
      "Missing required configuration variable 'gateway:config'",
    );
  });
});
