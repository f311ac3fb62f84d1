/**
 * Every committed stack deploys a gateway that starts: for each host, the gateway.toml the
 * program sends it (read back from the plan) is checked by the runtime's own `checkHostFiles`
 * against the files the program ships to that host. A key naming a file nothing ships (the
 * default attestation CA, say) is what fails the gateway on the host while preview passes.
 */
import { describe, expect, it } from "vitest";
import { shippedFiles } from "../../../host/files.js";
import { checkHostFiles, parseConfigText } from "../../../gateway-runtime/config/index.js";
import { allStacks, capturePlan, stackConfig } from "../../../tools/plan/plan.js";

describe("every committed stack: each host's config reads only files shipped to it", () => {
  // The global stack deploys no gateway (the front door).
  it.each(allStacks().filter((s) => s !== "global"))("%s", async (stack) => {
    const settings = stackConfig(stack).config;
    // A cluster stack without external endpoints gets the region's etcd CA and client pair.
    const { cluster } = JSON.parse(settings["gateway:config"] as string).core;
    const ownEtcd = cluster?.enabled === true && (cluster.etcd?.endpoints ?? []).length === 0;
    const shipped = shippedFiles({
      acmeCa: settings["gateway:acmeCaPem"] !== undefined,
      attestationCa: settings["gateway:attestationCaPem"] !== undefined,
      etcdCa: ownEtcd || settings["gateway:etcdCaPem"] !== undefined,
      etcdClient: ownEtcd || settings["gateway:etcdClientCertPem"] !== undefined,
    });
    const plan = await capturePlan(stack, { revealSecrets: true });
    const hosts = plan.resources.filter((r) => r.type === "gateway:index:GatewayHost");
    expect(hosts.length).toBeGreaterThan(0);
    for (const host of hosts) {
      const step = plan.resources.find((r) => r.name === `${host.name}-config`);
      const toml = step?.inputs.stdin;
      expect(typeof toml, `${host.name}: the config step's stdin`).toBe("string");
      const config = parseConfigText(toml as string, "toml", `${stack} ${host.name}`);
      expect(checkHostFiles(config, shipped), `stack ${stack}, host ${host.name}`).toEqual([]);
    }
  });
});

describe("preview fails on a file nothing ships", () => {
  /** The us stack with `gateway:config` changed by `edit` and extra program settings. */
  const us = (
    edit: (core: Record<string, unknown>) => void,
    extra: Record<string, string> = {},
  ) => {
    const { config, secretKeys } = stackConfig("us");
    const gateway = JSON.parse(config["gateway:config"] as string);
    edit(gateway.core);
    return {
      config: { ...config, ...extra, "gateway:config": JSON.stringify(gateway) },
      secretKeys,
    };
  };
  const CA = stackConfig("lab").config["gateway:attestationCaPem"] as string;

  it("mode ca without gateway:attestationCaPem: a RunError naming stack, host, key and path", async () => {
    const config = us((core) => {
      core.attestation = { mode: "ca" };
    });
    const failure = capturePlan("us", { config });
    // A RunError reaches the engine as its message alone; anything else as an unhandled exception with a stack.
    await expect(failure).rejects.not.toThrow(/unhandled exception/);
    await expect(failure).rejects.toThrow(
      "gateway config names files that will not be on the host (stack us, host gw1), 1 problem(s):\n" +
        "  - core.attestation.ca_file: /data/gateway/client-ca.pem is read by the gateway",
    );
  });

  it("acme_ca_file set by hand, not shipped; certbot off: the certificate files", async () => {
    await expect(
      capturePlan("us", {
        config: us((core) => {
          (core.certbot as Record<string, unknown>).acme_ca_file = "/etc/ssl/private-acme.pem";
        }),
      }),
    ).rejects.toThrow(
      "  - core.certbot.acme_ca_file: /etc/ssl/private-acme.pem is read by the gateway (CAs trusted for the ACME directory) but nothing ships it: set gateway:acmeCaPem instead",
    );
    await expect(
      capturePlan("us", {
        config: us((core) => {
          core.certbot = { enabled: false };
        }),
      }),
    ).rejects.toThrow(
      /core\.proxy\.cert_chain: \/var\/lib\/gateway\/certs\/live\/cert\.pem is read by the gateway .* nothing ships it: enable core\.certbot/,
    );
  });

  it("mode ca with gateway:attestationCaPem: the program ships the CA and points ca_file at it", async () => {
    const config = us(
      (core) => {
        core.attestation = { mode: "ca", ca_file: "/data/gateway/client-ca.pem" };
      },
      { "gateway:attestationCaPem": CA },
    );
    const plan = await capturePlan("us", { config, revealSecrets: true });
    const step = plan.resources.find((r) => r.name === "us-gw1-config");
    const toml = parseConfigText(step?.inputs.stdin as string, "toml", "us-gw1");
    expect(toml.core.attestation.ca_file).toBe("/etc/gateway/client-ca.pem");
    expect(step?.inputs.create).toContain('mv -f "$ca" /etc/gateway/client-ca.pem');
  });
});
