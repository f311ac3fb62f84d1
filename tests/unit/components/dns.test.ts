import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import {
  appAddressRecord,
  caaIssuerFor,
  caaValue,
  nameSlug,
} from "../../../components/dns-records.js";
import { GatewayDns } from "../../../components/gateway-dns.js";
import { capturePlan } from "../../../tools/plan/plan.js";
import { planMocks } from "../../helpers/pulumi-mocks.js";

describe("CAA and TXT values", () => {
  it.each([
    ["https://acme-v02.api.letsencrypt.org/directory", "letsencrypt.org"],
    ["https://acme-staging-v02.api.letsencrypt.org/directory", "letsencrypt.org"],
    ["https://dv.acme-v02.api.pki.goog/directory", "pki.goog"],
    ["https://acme.zerossl.com/v2/DV90", "sectigo.com"],
    ["https://api.buypass.com/acme/directory", "buypass.com"],
  ])("the CA of %s is %s", (url, issuer) => {
    expect(caaIssuerFor(url)).toBe(issuer);
  });

  it("an unknown CA needs the issuer set", () => {
    expect(() => caaIssuerFor("https://10.99.0.1:14000/dir")).toThrow(
      "no CAA issuer is known for the ACME directory https://10.99.0.1:14000/dir: set gateway:caaIssuer",
    );
  });

  it("pins issuance to the account and dns-01 (RFC 8657)", () => {
    expect(caaValue("letsencrypt.org", "https://acme-v02.api.letsencrypt.org/acme/acct/42")).toBe(
      "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/42; validationmethods=dns-01",
    );
    expect(() => caaValue("letsencrypt.org", "https://x/acct/1; evil")).toThrow(
      "bad ACME account URL",
    );
  });

  it("custom-domain TXT: quoted <app-id>:<port> under the prefix", () => {
    expect(appAddressRecord("_dstack-app-address", "shop.example.org", "ab12", 443)).toEqual({
      name: "_dstack-app-address.shop.example.org",
      content: '"ab12:443"',
    });
    expect(appAddressRecord("_dstack-app-address", "*.shop.example.org", "ab12", 443)).toEqual({
      name: "_dstack-app-address-wildcard.shop.example.org",
      content: '"ab12:443"',
    });
    expect(() => appAddressRecord("_p", "a.example", "AB", 443)).toThrow("must be lowercase hex");
    expect(() => appAddressRecord("_p", "a.example", "ab", 0)).toThrow("must be 1-65535");
    expect(nameSlug("*.a.example")).toBe("wildcard-a-example");
  });
});

describe("GatewayDns", () => {
  it("two hosts, a zone found by name, an explicit CAA issuer: records per host and name", async () => {
    const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];
    const base = planMocks("dns");
    await pulumi.runtime.setMocks(
      {
        ...base,
        newResource: async (args) => {
          if (args.type === "cloudflare:index/dnsRecord:DnsRecord")
            registered.push({ type: args.type, name: args.name, inputs: args.inputs });
          return base.newResource(args);
        },
      },
      "cvm-tls-gateway",
      "dns",
      false,
    );
    const dns = new GatewayDns("r-dns", {
      zoneName: "example.com",
      baseDomain: "r.gw.example.com",
      rpcDomain: "rpc.r.gw.example.com",
      hosts: [
        { name: "gw1", ipv4: "192.0.2.1" },
        { name: "gw2", ipv4: "192.0.2.2", ipv6: "2001:db8::2" },
      ],
      accountUrl: "https://ca.example/acct/9",
      acmeDirectoryUrl: "https://ca.example/dir",
      caaIssuer: "ca.example",
      customDomains: [
        { domain: "a.example.com", appId: "ab", port: 443, zone: "example.com" },
        { domain: "*.shop.example.com", appId: "cd", port: 8443, zone: "example.com" },
      ],
    });
    const records = await new Promise<typeof registered>((resolve) =>
      pulumi.all(Object.values(dns.records).map((r) => r.urn)).apply(() => resolve(registered)),
    );
    await pulumi.runtime.disconnect();
    const summary = records
      .map(
        (r) =>
          `${r.name} ${r.inputs.type} ${r.inputs.name} ${r.inputs.content ?? (r.inputs.data as { value: string }).value} ${r.inputs.zoneId}`,
      )
      .sort();
    expect(summary).toEqual([
      "r-dns-apex-a-gw1 A r.gw.example.com 192.0.2.1 zone-id-of-example.com",
      "r-dns-apex-a-gw2 A r.gw.example.com 192.0.2.2 zone-id-of-example.com",
      "r-dns-apex-aaaa-gw2 AAAA r.gw.example.com 2001:db8::2 zone-id-of-example.com",
      'r-dns-app-a-example-com TXT _dstack-app-address.a.example.com "ab:443" zone-id-of-example.com',
      'r-dns-app-wildcard-shop-example-com TXT _dstack-app-address-wildcard.shop.example.com "cd:8443" zone-id-of-example.com',
      "r-dns-caa-issue CAA r.gw.example.com ca.example; accounturi=https://ca.example/acct/9; validationmethods=dns-01 zone-id-of-example.com",
      "r-dns-caa-issuewild CAA r.gw.example.com ca.example; accounturi=https://ca.example/acct/9; validationmethods=dns-01 zone-id-of-example.com",
      "r-dns-rpc-a-gw1 A rpc.r.gw.example.com 192.0.2.1 zone-id-of-example.com",
      "r-dns-rpc-a-gw2 A rpc.r.gw.example.com 192.0.2.2 zone-id-of-example.com",
      "r-dns-rpc-aaaa-gw2 AAAA rpc.r.gw.example.com 2001:db8::2 zone-id-of-example.com",
      "r-dns-wildcard-a-gw1 A *.r.gw.example.com 192.0.2.1 zone-id-of-example.com",
      "r-dns-wildcard-a-gw2 A *.r.gw.example.com 192.0.2.2 zone-id-of-example.com",
      "r-dns-wildcard-aaaa-gw2 AAAA *.r.gw.example.com 2001:db8::2 zone-id-of-example.com",
    ]);
  });

  it("pins CAA on rpc_domain too when it is outside the base domain (dstack's seed layout)", async () => {
    const registered: { name: string; inputs: Record<string, unknown> }[] = [];
    const base = planMocks("dns");
    await pulumi.runtime.setMocks(
      {
        ...base,
        newResource: async (args) => {
          if (args.type === "cloudflare:index/dnsRecord:DnsRecord")
            registered.push({ name: args.name, inputs: args.inputs });
          return base.newResource(args);
        },
      },
      "cvm-tls-gateway",
      "dns",
      false,
    );
    const dns = new GatewayDns("s-dns", {
      zoneId: "zone-1",
      baseDomain: "app.example.com",
      rpcDomain: "gateway.example.com",
      hosts: [{ name: "gw1", ipv4: "192.0.2.1" }],
      accountUrl: "https://ca.example/acct/9",
      caaIssuer: "ca.example",
    });
    await new Promise<void>((resolve) =>
      pulumi.all(Object.values(dns.records).map((r) => r.urn)).apply(() => resolve()),
    );
    await pulumi.runtime.disconnect();
    const caa = registered
      .filter((r) => r.inputs.type === "CAA")
      .map((r) => `${r.name} ${r.inputs.name} ${(r.inputs.data as { tag: string }).tag}`)
      .sort();
    expect(caa).toEqual([
      "s-dns-caa-issue app.example.com issue",
      "s-dns-caa-issuewild app.example.com issuewild",
      "s-dns-caa-rpc-issue gateway.example.com issue",
      "s-dns-caa-rpc-issuewild gateway.example.com issuewild",
    ]);
  });

  it("needs a zone, and each custom domain needs its zone", async () => {
    await pulumi.runtime.setMocks(planMocks("dns"), "cvm-tls-gateway", "dns", false);
    const args = { baseDomain: "b.example", rpcDomain: "rpc.b.example", hosts: [] };
    expect(() => new GatewayDns("x", args)).toThrow("GatewayDns x: give zoneId or zoneName");
    expect(
      () =>
        new GatewayDns("y", {
          ...args,
          zoneId: "z",
          customDomains: [{ domain: "c.example", appId: "a", port: 1 }],
        }),
    ).toThrow("GatewayDns y: custom domain c.example needs zoneId or zone");
    await pulumi.runtime.disconnect();
  });

  it("a region with several hosts needs core.cluster.enabled; core.sync enables nothing", async () => {
    const { config, secretKeys } = await import("../../../tools/plan/plan.js").then((m) =>
      m.stackConfig("us"),
    );
    const hosts = JSON.parse(config["gateway:hosts"] as string) as object[];
    config["gateway:hosts"] = JSON.stringify([...hosts, { name: "gw2", address: "192.0.2.11" }]);
    const refusal =
      "stack us: 2 hosts in gateway:hosts, but core.cluster.enabled is not true: each host would keep registrations and WireGuard peers of its own, so a CVM registered on one would be unreachable through the others; set core.cluster.enabled: true in gateway:config";
    await expect(capturePlan("us", { config: { config, secretKeys } })).rejects.toThrow(refusal);
    // Enabling sync used to let several hosts through; it enables nothing, so it changes nothing.
    const gateway = JSON.parse(config["gateway:config"] as string);
    gateway.core.sync = { enabled: true };
    config["gateway:config"] = JSON.stringify(gateway);
    await expect(capturePlan("us", { config: { config, secretKeys } })).rejects.toThrow(refusal);
  });
});
