/**
 * The Cloudflare path end to end: the manager writes TXT and CAA through the official SDK to
 * the local API fake, a test DNS server mirrors the fake's TXT records, and a real pebble
 * validates against that DNS server.
 */
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertificateManager } from "../../../gateway-runtime/certs/index.js";
import { unquoteTxtContent } from "../../../gateway-runtime/certs/dns/cloudflare.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { type CloudflareFake, startCloudflareFake } from "../../helpers/cloudflare-fake.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { startDnsServer, type TestDnsServer } from "../../helpers/dns-server.js";
import { type Pebble, startPebble } from "../../helpers/pebble.js";

const BASE = "app.test.example";
const CHALLENGE = `_acme-challenge.${BASE}`;
let fake: CloudflareFake;
let dns: TestDnsServer;
let pebble: Pebble;
let workdir: string;

beforeAll(async () => {
  fake = await startCloudflareFake({ zoneName: BASE });
  dns = await startDnsServer();
  fake.onChange(() => {
    const values = fake.records("TXT", CHALLENGE).map((r) => unquoteTxtContent(r.content));
    if (values.length === 0) dns.deleteTxt(CHALLENGE);
    else dns.setTxt(CHALLENGE, values);
  });
  pebble = await startPebble({ dnsServer: dns.address });
  workdir = mkdtempSync(join(tmpdir(), "gw-certs-cf-"));
});
afterAll(async () => {
  await pebble?.close();
  await dns?.close();
  await fake?.close();
  rmSync(workdir, { recursive: true, force: true });
});

describe("Cloudflare DNS-01", () => {
  it("issues through the API, pins CAA there, and removes only its TXT values", async () => {
    fake.seed({ type: "TXT", name: CHALLENGE, content: '"someone-else"' });
    let raw = minimalConfig();
    for (const [key, value] of Object.entries({
      "core.proxy.base_domain": BASE,
      "core.rpc_domain": `rpc.${BASE}`, // under the wildcard: the certificate is NAMES
      "core.proxy.cert_chain": join(workdir, "live", "cert.pem"),
      "core.proxy.cert_key": join(workdir, "live", "key.pem"),
      "core.certbot": {
        enabled: true,
        workdir,
        acme_url: pebble.directoryUrl,
        acme_ca_file: pebble.caFile,
        domain: `*.${BASE}`,
        dns_provider: "cloudflare",
        cf_api_token: fake.token,
        cf_zone_id: fake.zoneId,
        dns_check_servers: [dns.address],
        dns_check_timeout: "5s",
        renew_timeout: "20s",
      },
    })) {
      raw = withKey(raw, key, value);
    }
    const m = new CertificateManager({
      config: parseGatewayConfig(raw, "cloudflare test"),
      log: silentLogger(),
      dnsOverrides: { cloudflareBaseURL: fake.baseURL },
    });
    try {
      await m.start();
      expect(await m.checkNow()).toEqual({ action: "renewed", reason: "missing" });
    } finally {
      await m.stop();
    }
    const leaf = new X509Certificate(readFileSync(join(workdir, "live", "cert.pem")));
    expect(leaf.subjectAltName?.split(", ").sort()).toEqual([`DNS:*.${BASE}`, `DNS:${BASE}`]);
    const { url } = JSON.parse(readFileSync(join(workdir, "account.json"), "utf8")) as {
      url: string;
    };
    const value = `127.0.0.1; accounturi=${url}; validationmethods=dns-01`;
    expect(fake.records("CAA", BASE).map((r) => r.data)).toEqual([
      { flags: 0, tag: "issue", value },
      { flags: 0, tag: "issuewild", value },
    ]);
    expect(fake.records("TXT", CHALLENGE).map((r) => r.content)).toEqual(['"someone-else"']);
    expect(fake.requests.filter((r) => r.method === "POST" && r.status === 200)).toHaveLength(4);
    expect(fake.requests.filter((r) => r.method === "DELETE" && r.status === 200)).toHaveLength(2);
  });
});
