import { describe, expect, it } from "vitest";
import { configRisks, parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";

const risks = (set: Record<string, unknown>) => {
  let raw = withKey(minimalConfig(), "core.admin", { auth_token: "a-token-of-24-characters" });
  for (const [key, value] of Object.entries(set)) raw = withKey(raw, key, value);
  return configRisks(parseGatewayConfig(raw, "test")).map((r) => r.path);
};

describe("risks a valid config carries, warned at every start", () => {
  it("tdx attestation with no authorization admits any TDX VM as any app", () => {
    const tdx = { "core.attestation": { mode: "tdx", pccs_url: "https://pccs.test.example" } };
    expect(risks(tdx)).toEqual(["core.auth.enabled"]);
    expect(
      risks({ ...tdx, "core.auth": { enabled: true, url: "https://kms.test.example/auth" } }),
    ).toEqual([]);
    // Mode "ca": the CA (the KMS root) is what admits, so no authorization is a choice.
    expect(risks({})).toEqual([]);
  });

  it("a cluster whose etcd connection has no TLS", () => {
    const cluster = { enabled: true, etcd: { endpoints: ["10.0.0.5:2379"] } };
    expect(risks({ "core.cluster": cluster })).toEqual(["core.cluster.etcd.ca_file"]);
    const tls = { ...cluster.etcd, ca_file: "/etc/gateway/etcd-ca.pem" };
    expect(risks({ "core.cluster": { ...cluster, etcd: tls } })).toEqual([]);
  });

  it("an admin API without authentication", () => {
    expect(risks({ "core.admin": { insecure_no_auth: true } })).toEqual([
      "core.admin.insecure_no_auth",
    ]);
    expect(risks({ "core.admin": { enabled: false, insecure_no_auth: true } })).toEqual([]);
  });
});
