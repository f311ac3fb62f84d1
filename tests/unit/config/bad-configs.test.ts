import { describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { withKey } from "../../../testkit/config.js";
import { base, problemsOf, set } from "./problems.js";

const certbotCloudflare = withKey(
  withKey(set("core.certbot.enabled", true), "core.certbot.domain", "*.app.test.example"),
  "core.certbot.cf_zone_id",
  "z1",
);

// [what, config, dotted path of the one problem, text the message must contain]
const cases: [string, Record<string, unknown>, string, string][] = [
  ["unknown top-level key", set("prot", 1), "prot", 'unknown key (did you mean "port"?)'],
  [
    "unknown nested key",
    set("core.proxy.lisen_port", 443),
    "core.proxy.lisen_port",
    'did you mean "listen_port"',
  ],
  ["unknown section", set("core.extra", {}), "core.extra", "unknown key"],
  ["port above range", set("port", 70000), "port", "got 70000"],
  ["port zero", set("port", 0), "port", "1-65535"],
  ["port as string", set("port", "8000"), "port", 'got "8000"'],
  ["port not integer", set("core.proxy.listen_port", 443.5), "core.proxy.listen_port", "got 443.5"],
  ["admin port negative", set("core.admin.port", -1), "core.admin.port", "got -1"],
  ["wg listen port too big", set("core.wg.listen_port", 65536), "core.wg.listen_port", "got 65536"],
  ["agent port", set("core.proxy.agent_port", 1e6), "core.proxy.agent_port", "got 1000000"],
  [
    "bad duration unit",
    set("core.proxy.timeouts.connect", "5sec"),
    "core.proxy.timeouts.connect",
    'got "5sec"',
  ],
  [
    "duration as number",
    set("core.proxy.timeouts.idle", 600),
    "core.proxy.timeouts.idle",
    "got 600",
  ],
  ["negative duration", set("core.recycle.timeout", "-1h"), "core.recycle.timeout", 'got "-1h"'],
  [
    "empty duration",
    set("core.certbot.renew_interval", ""),
    "core.certbot.renew_interval",
    'got ""',
  ],
  ["keep_alive negative seconds", set("keep_alive", -3), "keep_alive", "got -3"],
  [
    "log level",
    set("log_level", "verbose"),
    "log_level",
    'expected one of trace, debug, info, warn, error, got "verbose"',
  ],
  ["workers zero", set("workers", 0), "workers", "expected an integer 1-1024, got 0"],
  ["connect_top_n zero", set("core.proxy.connect_top_n", 0), "core.proxy.connect_top_n", "got 0"],
  ["workers zero", set("core.proxy.workers", 0), "core.proxy.workers", "got 0"],
  ["workers over 64", set("core.proxy.workers", 65), "core.proxy.workers", "got 65"],
  [
    "base domain one label",
    set("core.proxy.base_domain", "localhost"),
    "core.proxy.base_domain",
    'got "localhost"',
  ],
  [
    "base domain uppercase",
    set("core.proxy.base_domain", "App.Example.com"),
    "core.proxy.base_domain",
    "got",
  ],
  [
    "base domain bad label",
    set("core.proxy.base_domain", "-app.example.com"),
    "core.proxy.base_domain",
    "got",
  ],
  [
    "base domain missing",
    set("core.proxy.base_domain", undefined),
    "core.proxy.base_domain",
    "is required",
  ],
  [
    "rpc domain with space",
    set("core.rpc_domain", "gate way.example.com"),
    "core.rpc_domain",
    "got",
  ],
  [
    "listen addr",
    set("core.proxy.listen_addr", "0.0.0.256"),
    "core.proxy.listen_addr",
    'got "0.0.0.256"',
  ],
  ["wg ip not a cidr", set("core.wg.ip", "10.4.0.1"), "core.wg.ip", 'got "10.4.0.1"'],
  ["wg ip prefix 33", set("core.wg.ip", "10.4.0.1/33"), "core.wg.ip", "got"],
  [
    "wg ip is the network address",
    set("core.wg.ip", "10.4.0.0/16"),
    "core.wg.ip",
    "network or broadcast",
  ],
  [
    "client range outside network",
    set("core.wg.client_ip_range", "10.5.0.0/20"),
    "core.wg.client_ip_range",
    "inside the WireGuard network 10.4.0.0/16",
  ],
  [
    "client range larger than network",
    set("core.wg.client_ip_range", "10.0.0.0/8"),
    "core.wg.client_ip_range",
    "inside",
  ],
  [
    "gateway ip outside reserved",
    set("core.wg.reserved_net", ["10.4.1.0/27"]),
    "core.wg.reserved_net",
    "must contain the gateway IP 10.4.0.1",
  ],
  [
    "reserved entry not a cidr",
    set("core.wg.reserved_net", ["10.4.0.0/27", "nope"]),
    "core.wg.reserved_net[1]",
    'got "nope"',
  ],
  ["endpoint without port", set("core.wg.endpoint", "203.0.113.10"), "core.wg.endpoint", "got"],
  [
    "endpoint ipv6 without brackets",
    set("core.wg.endpoint", "2001:db8::1:51820"),
    "core.wg.endpoint",
    "got",
  ],
  ["public key missing", set("core.wg.public_key", undefined), "core.wg.public_key", "is required"],
  [
    "private key missing",
    set("core.wg.private_key", undefined),
    "core.wg.private_key",
    "is required",
  ],
  [
    "public key of another key",
    set("core.wg.public_key", `${"x".repeat(43)}=`),
    "core.wg.public_key",
    "does not match core.wg.private_key",
  ],
  [
    "proxy port clashes with rpc port",
    set("core.proxy.listen_port", 8000),
    "core.proxy.listen_port",
    "port 8000 is also used by port",
  ],
  [
    "admin port clashes with proxy port",
    set("core.admin.port", 443),
    "core.admin.port",
    "also used by core.proxy.listen_port",
  ],
  [
    "admin without authentication on a public address",
    withKey(set("core.admin.address", "0.0.0.0"), "core.admin.insecure_no_auth", true),
    "core.admin.insecure_no_auth",
    "must not be true while core.admin.address (0.0.0.0) is not a loopback address",
  ],
  [
    "admin without authentication on an IPv6 address",
    withKey(set("core.admin.address", "fd00::1"), "core.admin.insecure_no_auth", true),
    "core.admin.insecure_no_auth",
    "(fd00::1) is not a loopback address",
  ],
  [
    "auth url missing",
    set("core.auth.enabled", true),
    "core.auth.url",
    "is required when core.auth.enabled is true",
  ],
  [
    "auth url not http",
    withKey(set("core.auth.enabled", true), "core.auth.url", "ftp://kms"),
    "core.auth.url",
    'got "ftp://kms"',
  ],
  [
    "certbot token missing",
    certbotCloudflare,
    "core.certbot.cf_api_token",
    'dns_provider is "cloudflare"',
  ],
  [
    "certbot domain not the wildcard",
    withKey(
      withKey(certbotCloudflare, "core.certbot.cf_api_token", "t"),
      "core.certbot.domain",
      "*.other.example",
    ),
    "core.certbot.domain",
    'must be "*.app.test.example"',
  ],
  [
    "rfc2136 server missing",
    withKey(
      withKey(
        withKey(
          withKey(
            withKey(certbotCloudflare, "core.certbot.dns_provider", "rfc2136"),
            "core.certbot.rfc2136.zone",
            "test.example",
          ),
          "core.certbot.rfc2136.tsig_key_name",
          "k",
        ),
        "core.certbot.rfc2136.tsig_secret",
        "c2VjcmV0",
      ),
      "core.certbot.cf_zone_id",
      undefined,
    ),
    "core.certbot.rfc2136.server",
    'dns_provider is "rfc2136"',
  ],
  [
    // minimalConfig's rpc_domain, gateway.test.example, is outside *.app.test.example.
    "rfc2136 zone (default: the base domain) does not hold rpc_domain",
    withKey(
      withKey(
        withKey(
          withKey(
            withKey(certbotCloudflare, "core.certbot.dns_provider", "rfc2136"),
            "core.certbot.rfc2136.tsig_key_name",
            "k",
          ),
          "core.certbot.rfc2136.tsig_secret",
          "c2VjcmV0",
        ),
        "core.certbot.rfc2136.server",
        "127.0.0.1:53",
      ),
      "core.certbot.cf_zone_id",
      undefined,
    ),
    "core.certbot.rfc2136.zone",
    'must be a zone holding both core.proxy.base_domain and core.rpc_domain ("gateway.test.example" is not under "*.app.test.example"',
  ],
  [
    "served certificate is not the managed one",
    withKey(
      withKey(certbotCloudflare, "core.certbot.cf_api_token", "t"),
      "core.proxy.cert_chain",
      "/etc/ssl/other.pem",
    ),
    "core.proxy.cert_chain",
    'must be "/data/rproxy/certs/live/cert.pem" while core.certbot.enabled is true',
  ],
  [
    "tdx without a PCCS",
    set("core.attestation.mode", "tdx"),
    "core.attestation.pccs_url",
    'required when core.attestation.mode is "tdx"',
  ],
  [
    "account url without key",
    set("core.certbot.account_url", "https://acme.example/acct/1"),
    "core.certbot.account_key",
    "required when core.certbot.account_url is set",
  ],
  [
    "acme url not a url",
    set("core.certbot.acme_url", "letsencrypt"),
    "core.certbot.acme_url",
    'got "letsencrypt"',
  ],
  [
    "enabled as string",
    set("core.recycle.enabled", "yes"),
    "core.recycle.enabled",
    'expected true or false, got "yes"',
  ],
  [
    "http port clashes with proxy port",
    set("core.proxy.http_port", 443),
    "core.proxy.http_port",
    "also used by core.proxy.listen_port",
  ],
  ["balance strategy", set("core.proxy.balance", "fastest"), "core.proxy.balance", 'got "fastest"'],
  [
    "app override key not an app id",
    set("core.proxy.app_overrides", { "My-App": { proxy_protocol: true } }),
    "core.proxy.app_overrides.My-App",
    "expected an app id",
  ],
  [
    "app override unknown field",
    set("core.proxy.app_overrides", { abc123: { proxy: true } }),
    "core.proxy.app_overrides.abc123.proxy",
    "unknown key",
  ],
  [
    "dns server not host:port",
    set("core.proxy.app_address_dns_servers", ["10.0.0.1"]),
    "core.proxy.app_address_dns_servers[0]",
    'got "10.0.0.1"',
  ],
  ["section as scalar", set("core.proxy.timeouts", 5), "core.proxy.timeouts", "got 5"],
  [
    "cluster enabled without etcd endpoints",
    set("core.cluster.enabled", true),
    "core.cluster.etcd.endpoints",
    "required when core.cluster.enabled is true",
  ],
  [
    "etcd client certificate without its key",
    set("core.cluster.etcd.cert_file", "/etc/gateway/etcd.pem"),
    "core.cluster.etcd.cert_file",
    "cert_file and key_file go together",
  ],
  [
    "etcd endpoint as a URL",
    set("core.cluster.etcd.endpoints", ["https://10.0.0.1:2379"]),
    "core.cluster.etcd.endpoints[0]",
    "host:port",
  ],
];

describe("bad configs name the key path", () => {
  it("has at least 30 cases", () => expect(cases.length).toBeGreaterThanOrEqual(30));

  it.each(cases)("%s", (_what, raw, path, text) => {
    const problems = problemsOf(raw);
    expect(problems.map((p) => p.path)).toEqual([path]);
    expect(problems[0]?.message).toContain(text);
  });

  it("the minimal config itself is valid", () => {
    expect(parseGatewayConfig(base, "test").core.proxy.base_domain).toBe("app.test.example");
  });

  it("an admin API off loopback is fine with a token, on a socket, or when disabled", () => {
    const open = withKey(
      set("core.admin.address", "0.0.0.0"),
      "core.admin.insecure_no_auth",
      false,
    );
    const withToken = withKey(open, "core.admin.auth_token", "t0ken");
    expect(parseGatewayConfig(withToken, "test").core.admin.auth_token?.reveal()).toBe("t0ken");
    const insecure = withKey(open, "core.admin.insecure_no_auth", true);
    for (const raw of [
      withKey(open, "core.admin.enabled", false),
      withKey(insecure, "core.admin.socket", "/run/gateway/admin.sock"),
      set("core.admin.address", "::1"),
      set("core.admin.address", "127.1.2.3"),
    ]) {
      expect(() => parseGatewayConfig(raw, "test")).not.toThrow();
    }
  });
});
