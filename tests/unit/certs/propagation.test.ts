import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertError } from "../../../gateway-runtime/certs/errors.js";
import { configuredCheckServers, waitForTxt } from "../../../gateway-runtime/certs/propagation.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { startDnsServer, type TestDnsServer } from "../../helpers/dns-server.js";

const NAME = "_acme-challenge.app.test.example";
let a: TestDnsServer;
let b: TestDnsServer;

beforeAll(async () => {
  a = await startDnsServer();
  b = await startDnsServer();
});
afterAll(async () => {
  await a.close();
  await b.close();
});

const rejection = async (p: Promise<unknown>): Promise<CertError> => {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(CertError);
  return e as CertError;
};

describe("waitForTxt", () => {
  it("returns once every server shows every value (other values may be there too)", async () => {
    a.setTxt(NAME, ["other", "v1", "v2"]);
    b.setTxt(NAME, [["v", "1"], "v2"]); // a value split in two character-strings
    await waitForTxt(NAME, ["v1", "v2"], { servers: [a.address, b.address], timeoutMs: 2000 });
    expect(a.queries(NAME)).toBeGreaterThanOrEqual(1);
    expect(b.queries(NAME)).toBeGreaterThanOrEqual(1);
  });

  it("keeps asking until a lagging server catches up", async () => {
    a.setTxt(NAME, ["v3"]);
    b.deleteTxt(NAME);
    const before = b.queries(NAME);
    // b catches up once it was asked 3 times (however long those took)
    const lagging = setInterval(() => {
      if (b.queries(NAME) - before < 3) return;
      clearInterval(lagging);
      b.setTxt(NAME, ["v3"]);
    }, 5);
    try {
      await waitForTxt(NAME, ["v3"], {
        servers: [a.address, b.address],
        timeoutMs: 10_000,
        intervalMs: 50,
      });
    } finally {
      clearInterval(lagging);
    }
    expect(b.queries(NAME) - before).toBeGreaterThan(3);
  });

  it("fails after the timeout naming the server and what is missing", async () => {
    a.setTxt(NAME, ["v4"]);
    b.setTxt(NAME, ["old"]);
    const started = Date.now();
    const e = await rejection(
      waitForTxt(NAME, ["v4"], { servers: [a.address, b.address], timeoutMs: 400, intervalMs: 50 }),
    );
    expect(Date.now() - started).toBeLessThan(1500);
    expect(e.code).toBe("E_CERT_DNS_PROPAGATION");
    expect(e.message).toBe(
      `TXT ${NAME} not visible within 400 ms on ${b.address} (1 of 1 values missing)`,
    );
  });

  it("reports a server that does not answer", async () => {
    a.setMode("silent");
    try {
      const e = await rejection(
        waitForTxt(NAME, ["v4"], { servers: [a.address], timeoutMs: 300, intervalMs: 50 }),
      );
      expect(e.message).toMatch(new RegExp(`${a.address} \\(.*(ETIMEOUT|timeout)`, "i"));
    } finally {
      a.setMode("answer");
    }
  });

  it("stops at once when aborted", async () => {
    b.deleteTxt(NAME);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    const e = await rejection(
      waitForTxt(NAME, ["v5"], {
        servers: [b.address],
        timeoutMs: 5000,
        signal: controller.signal,
      }),
    );
    expect(e.code).toBe("E_CERT_ABORTED");
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe("configuredCheckServers", () => {
  const certbot = (over: Record<string, unknown>) => {
    let raw = withKey(minimalConfig(), "core.certbot", { enabled: false, ...over });
    raw = withKey(raw, "core.proxy.base_domain", "app.test.example");
    return parseGatewayConfig(raw, "test").core.certbot;
  };

  it.each([
    [
      "the configured check servers first",
      {
        dns_check_servers: ["192.0.2.1:53", "[2001:db8::1]:53"],
        dns_provider: "rfc2136",
        rfc2136: { server: "192.0.2.9:53" },
      },
      ["192.0.2.1:53", "[2001:db8::1]:53"],
    ],
    [
      "the RFC 2136 primary",
      { dns_provider: "rfc2136", rfc2136: { server: "192.0.2.9:5353" } },
      ["192.0.2.9:5353"],
    ],
    [
      "nothing for Cloudflare (the zone's NS are looked up)",
      { dns_provider: "cloudflare" },
      undefined,
    ],
  ])("takes %s", (_what, over, expected) => {
    expect(configuredCheckServers(certbot(over))).toEqual(expected);
  });
});
