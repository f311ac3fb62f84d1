import { describe, expect, it } from "vitest";
import {
  checkHostFiles,
  checkHostPrograms,
  ConfigError,
  FILE_KEYS,
  filesReadAtStart,
  gatewayConfigSchema,
  parseGatewayConfig,
  programsRunAtStart,
  requireHostFiles,
} from "../../../gateway-runtime/config/index.js";
import { fieldsOf } from "../../../gateway-runtime/config/walk.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";

const parse = (raw: Record<string, unknown>) => parseGatewayConfig(raw, "test");
const set = (raw: Record<string, unknown>, pairs: Record<string, unknown>) =>
  Object.entries(pairs).reduce((r, [k, v]) => withKey(r, k, v), raw);

/** certbot on (Cloudflare), attestation "ca" with its CA at /etc/gateway/client-ca.pem. */
const certbotOn = set(minimalConfig(), {
  "core.certbot.enabled": true,
  "core.certbot.domain": "*.app.test.example",
  "core.certbot.cf_zone_id": "z1",
  "core.certbot.cf_api_token": "t",
  "core.attestation.ca_file": "/etc/gateway/client-ca.pem",
});

// [key, a config that reads the file, its path]: each file key the gateway reads.
const reads: [string, Record<string, unknown>, string][] = [
  ["core.attestation.ca_file", certbotOn, "/etc/gateway/client-ca.pem"],
  [
    "core.certbot.acme_ca_file",
    set(certbotOn, { "core.certbot.acme_ca_file": "/etc/gateway/acme-ca.pem" }),
    "/etc/gateway/acme-ca.pem",
  ],
  [
    "core.proxy.cert_chain",
    set(minimalConfig(), { "core.proxy.cert_chain": "/etc/gateway/cert.pem" }),
    "/etc/gateway/cert.pem",
  ],
  [
    "core.proxy.cert_key",
    set(minimalConfig(), { "core.proxy.cert_key": "/etc/gateway/key.pem" }),
    "/etc/gateway/key.pem",
  ],
];

describe("checkHostFiles: each file the gateway reads at start must be shipped", () => {
  for (const [key, raw, path] of reads) {
    const config = parse(raw);
    const everything = filesReadAtStart(config).map((r) => r.path);

    it(`${key}: present is ok`, () => {
      expect(everything).toContain(path);
      expect(checkHostFiles(config, everything)).toEqual([]);
    });

    it(`${key}: absent is one problem naming the key and the path`, () => {
      const problems = checkHostFiles(
        config,
        everything.filter((p) => p !== path),
      );
      expect(problems).toHaveLength(1);
      expect(problems[0]?.path).toBe(key);
      expect(problems[0]?.message).toMatch(
        new RegExp(
          `^${path.replaceAll(".", "\\.")} is read by the gateway \\(.+\\) but nothing ships it$`,
        ),
      );
    });
  }

  it("the issue's case: mode ca with the default ca_file and nothing shipped", () => {
    const config = parse(set(certbotOn, { "core.attestation.ca_file": undefined }));
    expect(checkHostFiles(config, ["/etc/gateway/gateway.toml"])).toEqual([
      {
        path: "core.attestation.ca_file",
        message:
          '/data/gateway/client-ca.pem is read by the gateway (CVM client certificates must chain to it in attestation mode "ca") but nothing ships it',
      },
    ]);
  });

  it("compares normalized paths", () => {
    const config = parse(
      set(certbotOn, { "core.attestation.ca_file": "/etc//gateway/./client-ca.pem" }),
    );
    expect(checkHostFiles(config, ["/etc/gateway/client-ca.pem"])).toEqual([]);
  });

  it("mode tdx reads no CA file; certbot on reads no certificate file (it writes them)", () => {
    const tdx = parse(
      set(certbotOn, {
        "core.attestation.mode": "tdx",
        "core.attestation.pccs_url": "https://pccs.test.example",
      }),
    );
    expect(filesReadAtStart(tdx)).toEqual([]);
    expect(checkHostFiles(tdx, [])).toEqual([]);
  });

  it("certbot off never reads acme_ca_file (nothing contacts ACME)", () => {
    const off = parse(
      set(minimalConfig(), {
        "core.certbot.acme_ca_file": "/etc/gateway/acme-ca.pem",
        "core.attestation.mode": "tdx",
        "core.attestation.pccs_url": "https://pccs.test.example",
      }),
    );
    expect(filesReadAtStart(off).map((r) => r.key)).toEqual([
      "core.proxy.cert_chain",
      "core.proxy.cert_key",
    ]);
  });

  it("requireHostFiles throws E_CONFIG_FILE_MISSING listing every problem", () => {
    const config = parse(minimalConfig());
    let error: unknown;
    try {
      requireHostFiles(config, [], "host gw1");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe("E_CONFIG_FILE_MISSING");
    expect((error as ConfigError).message).toBe(
      [
        "gateway config names files that will not be on the host (host gw1), 3 problem(s):",
        '  - core.attestation.ca_file: /data/gateway/client-ca.pem is read by the gateway (CVM client certificates must chain to it in attestation mode "ca") but nothing ships it',
        "  - core.proxy.cert_chain: /data/rproxy/certs/live/cert.pem is read by the gateway (the served certificate, while core.certbot.enabled is false) but nothing ships it",
        "  - core.proxy.cert_key: /data/rproxy/certs/live/key.pem is read by the gateway (the served certificate, while core.certbot.enabled is false) but nothing ships it",
      ].join("\n"),
    );
  });

  it("every schema key naming a file or directory is classified as read or written", () => {
    const named = fieldsOf(gatewayConfigSchema)
      .filter(({ path, meta }) => meta.type === "path" || /_(file|path|dir)$|workdir$/.test(path))
      .map(({ path }) => path)
      .sort();
    expect(named).toEqual([...FILE_KEYS.read, ...FILE_KEYS.written].sort());
  });
});

describe("checkHostPrograms: the programs an engine runs must be on the host", () => {
  const haproxy = parse(set(minimalConfig(), { "core.proxy.engine": "haproxy" }));

  it("the node engine runs no program; haproxy runs /usr/sbin/haproxy", () => {
    expect(programsRunAtStart(parse(minimalConfig()))).toEqual([]);
    expect(programsRunAtStart(haproxy).map((p) => [p.key, p.path])).toEqual([
      ["core.proxy.engine", "/usr/sbin/haproxy"],
    ]);
    expect(checkHostPrograms(parse(minimalConfig()), () => false)).toEqual([]);
  });

  it("a missing binary is one problem naming the key and the path", () => {
    expect(checkHostPrograms(haproxy, () => true)).toEqual([]);
    expect(checkHostPrograms(haproxy, () => false)).toEqual([
      {
        path: "core.proxy.engine",
        message:
          '/usr/sbin/haproxy is run by the gateway (core.proxy.engine is "haproxy" (Debian package haproxy)) but is not an executable file here',
      },
    ]);
  });

  it("requireHostFiles lists the missing programs with the missing files", () => {
    let error: unknown;
    try {
      requireHostFiles(
        haproxy,
        [],
        "host gw1",
        checkHostPrograms(haproxy, () => false),
      );
    } catch (e) {
      error = e;
    }
    expect((error as ConfigError).code).toBe("E_CONFIG_FILE_MISSING");
    expect((error as ConfigError).message).toContain("4 problem(s)");
    expect((error as ConfigError).message).toContain("  - core.proxy.engine: /usr/sbin/haproxy");
  });
});
