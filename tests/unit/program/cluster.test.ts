/**
 * A region of several hosts (issue #18, provisioning): the committed eu stack runs the region's
 * etcd on its three hosts; other shapes are refused at preview with the reason, or use an
 * external etcd. Plans come from the recording engine running the compiled program.
 */
import { describe, expect, it } from "vitest";
import { issueCa, issueLeaf } from "../../../components/x509.js";
import { checkHostFiles, parseConfigText } from "../../../gateway-runtime/config/index.js";
import { etcdUnitScript } from "../../../host/etcd.js";
import { shippedFiles } from "../../../host/files.js";
import { HOST_PATHS } from "../../../host/layout.js";
import { capturePlan, type Plan, stackConfig } from "../../../tools/plan/plan.js";

const HOSTS = [
  { name: "gw1", address: "198.51.100.20" },
  { name: "gw2", address: "198.51.100.21" },
  { name: "gw3", address: "198.51.100.22" },
];
const input = (plan: Plan, name: string, key: string) =>
  plan.resources.find((r) => r.name === name)?.inputs[key];
const hostToml = (plan: Plan, host: string) =>
  parseConfigText(String(input(plan, `eu-${host}-config`, "stdin")), "toml", host);

/** The eu stack, its gateway:config and settings changed by `edit`. */
function eu(edit: (core: Record<string, unknown>, settings: Record<string, string>) => void) {
  const { config, secretKeys } = stackConfig("eu");
  const gateway = JSON.parse(config["gateway:config"] as string);
  const settings = { ...config };
  edit(gateway.core, settings);
  return {
    config: { ...settings, "gateway:config": JSON.stringify(gateway) },
    secretKeys: [...secretKeys, "gateway:etcdClientKeyPem"],
  };
}
const hosts = (n: number) => (_core: unknown, settings: Record<string, string>) => {
  const all = JSON.parse(settings["gateway:hosts"] as string) as object[];
  settings["gateway:hosts"] = JSON.stringify(all.slice(0, n));
};

describe("eu: three hosts run the region's etcd", () => {
  it("a member per host: initial cluster of all three, peer and client TLS from the region's CA", async () => {
    const plan = await capturePlan("eu", { revealSecrets: true });
    for (const self of HOSTS) {
      const script = String(input(plan, `eu-${self.name}-etcd-unit`, "create"));
      expect(script).toBe(etcdUnitScript({ self, members: HOSTS, token: "cvm-gateway-eu" }));
      for (const flag of [
        `--name=${self.name}`,
        "--initial-cluster=gw1=https://198.51.100.20:2380,gw2=https://198.51.100.21:2380,gw3=https://198.51.100.22:2380",
        `--listen-peer-urls=https://${self.address}:2380`,
        `--listen-client-urls=https://${self.address}:2379`,
        "--client-cert-auth --trusted-ca-file=/etc/etcd/gateway/ca.pem",
        "--peer-client-cert-auth --peer-trusted-ca-file=/etc/etcd/gateway/ca.pem",
        "--peer-key-file=/etc/etcd/gateway/member-key.pem",
      ]) {
        expect(script).toContain(flag);
      }
      for (const hardening of ["User=etcd", "CapabilityBoundingSet=\n", "NoNewPrivileges=yes"]) {
        expect(script).toContain(hardening);
      }
      expect(script).toContain("ReadWritePaths=/var/lib/etcd/gateway\n");
      // etcd's ports, to the other two hosts only; the package installed like the others.
      const setup = String(input(plan, `eu-${self.name}-setup`, "create"));
      const others = HOSTS.filter((h) => h !== self).map((h) => h.address);
      expect(setup).toContain(
        `ip saddr { ${others.join(", ")} } tcp dport { 2379, 2380 } accept comment "etcd: the region's other hosts"`,
      );
      expect(setup).toContain("apt_install etcd-server\nsystemctl mask --now etcd.service\n");
    }
  });

  it("each host: its own WireGuard address, node name, every endpoint, the shipped TLS files", async () => {
    const plan = await capturePlan("eu", { revealSecrets: true });
    const shipped = shippedFiles({
      acmeCa: false,
      attestationCa: false,
      etcdCa: true,
      etcdClient: true,
    });
    const configs = HOSTS.map((h) => hostToml(plan, h.name));
    expect(configs.map((c) => c.core.wg.ip)).toEqual(["10.4.0.1/16", "10.4.0.2/16", "10.4.0.3/16"]);
    expect(new Set(configs.map((c) => c.core.wg.public_key)).size).toBe(3);
    expect(configs.map((c) => c.core.wg.endpoint)).toEqual(HOSTS.map((h) => `${h.address}:51820`));
    for (const [i, config] of configs.entries()) {
      expect(config.core.cluster).toMatchObject({
        enabled: true,
        node_name: HOSTS[i]?.name,
        etcd: {
          endpoints: HOSTS.map((h) => `${h.address}:2379`),
          ca_file: HOST_PATHS.etcdCa,
          cert_file: HOST_PATHS.etcdClientCert,
          key_file: HOST_PATHS.etcdClientKey,
        },
      });
      expect(checkHostFiles(config, shipped)).toEqual([]);
    }
    // The TLS step: six PEM blocks on stdin, keys 0600 for the user that reads each.
    const tls = String(input(plan, "eu-gw2-etcd-tls", "create"));
    expect(tls).toContain(
      'install -m 0600 -o etcd -g etcd "$tmp/2" /etc/etcd/gateway/member-key.pem',
    );
    expect(tls).toContain(
      'install -m 0600 -o gateway -g gateway "$tmp/5" /etc/gateway/etcd-client-key.pem',
    );
    const stdin = String(input(plan, "eu-gw2-etcd-tls", "stdin"));
    expect(stdin.match(/^-----END /gm)).toHaveLength(6);
  });
});

describe("refused at preview, with the reason", () => {
  it("2 hosts: etcd's quorum", async () => {
    await expect(capturePlan("eu", { config: eu(hosts(2)) })).rejects.toThrow(
      "stack eu: 2 hosts in gateway:hosts, and the program runs an etcd member on each: etcd writes only while a majority of its members (its quorum) is up, so 3 members survive one lost host and 5 two, while 2 members survive no more lost hosts than 1 (a majority of 2 is 2), with one more host that must be up; list 1, 3 or 5 hosts",
    );
  });

  it("several hosts without core.cluster.enabled", async () => {
    const config = eu((core) => {
      core.cluster = { enabled: false };
    });
    await expect(capturePlan("eu", { config })).rejects.toThrow(
      "stack eu: 3 hosts in gateway:hosts, but core.cluster.enabled is not true",
    );
  });

  it("a host's WireGuard address outside core.wg.reserved_net", async () => {
    const config = eu((core) => {
      (core.wg as Record<string, unknown>).reserved_net = ["10.4.0.0/31"];
    });
    await expect(capturePlan("eu", { config })).rejects.toThrow(
      "stack eu: host gw2 (number 2 in gateway:hosts) gets the WireGuard address 10.4.0.2 (core.wg.ip 10.4.0.1/16 + 1), which is outside core.wg.reserved_net [10.4.0.0/31]: CVMs get every address outside it, so widen core.wg.reserved_net or move core.wg.ip",
    );
  });

  it("a stack-wide node_name, and external etcd PEMs while the program runs etcd", async () => {
    const named = eu((core) => {
      core.cluster = { enabled: true, node_name: "gw" };
    });
    await expect(capturePlan("eu", { config: named })).rejects.toThrow(
      "core.cluster.node_name: is generated by the Pulumi program for each host; remove it from the stack",
    );
    const pems = eu((_core, settings) => {
      settings["gateway:etcdCaPem"] = issueCa("x").certPem;
    });
    await expect(capturePlan("eu", { config: pems })).rejects.toThrow(
      "stack eu: gateway:etcdCaPem set, but core.cluster.etcd.endpoints is empty",
    );
  });
});

describe("an external etcd (core.cluster.etcd.endpoints set)", () => {
  it("runs no member: the hosts get the stack's endpoints and PEMs", async () => {
    const ca = issueCa("external etcd CA");
    const client = issueLeaf(ca, { commonName: "gw", dnsNames: [], ips: [], usage: "client" });
    const endpoints = ["etcd1.example.net:2379", "etcd2.example.net:2379"];
    const config = eu((core, settings) => {
      core.cluster = { enabled: true, etcd: { endpoints } };
      Object.assign(settings, {
        "gateway:etcdCaPem": ca.certPem,
        "gateway:etcdClientCertPem": client.certPem,
        "gateway:etcdClientKeyPem": client.keyPem,
      });
    });
    const plan = await capturePlan("eu", { config, revealSecrets: true });
    const names = plan.resources.map((r) => r.name);
    expect(names.filter((n) => /etcd/.test(n)).sort()).toEqual(
      HOSTS.map((h) => `eu-${h.name}-etcd-tls`),
    );
    for (const host of HOSTS) {
      const { cluster } = hostToml(plan, host.name).core;
      expect(cluster.etcd).toMatchObject({ endpoints, ca_file: HOST_PATHS.etcdCa });
      expect(cluster.etcd.key_file).toBe(HOST_PATHS.etcdClientKey);
      expect(String(input(plan, `eu-${host.name}-setup`, "create"))).not.toContain("etcd");
      const stdin = String(input(plan, `eu-${host.name}-etcd-tls`, "stdin"));
      expect(stdin).toBe(ca.certPem + client.certPem + client.keyPem);
    }
    const masked = await capturePlan("eu", { config });
    expect(JSON.stringify(masked)).not.toContain(client.keyPem.split("\n")[1]);
  });
});
