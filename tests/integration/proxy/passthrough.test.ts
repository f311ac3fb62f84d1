import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueLeaf, type TestCa } from "../../../testkit/certs.js";
import {
  APP_A,
  APP_B,
  type Backend,
  curl,
  httpBackend,
  type ProxyLab,
  run,
  startProxyLab,
  TEST_DOMAIN,
  ENGINES,
} from "./harness.js";

describe.each(ENGINES)("on the %s engine", (engine) => {
  let lab: ProxyLab;
  let backendCa: TestCa;
  let tlsBackend: TlsServer;
  let plain: Backend;
  let backendCertPem = "";
  const received: Buffer[] = [];

  beforeAll(async () => {
    lab = await startProxyLab({}, { engine });
    await lab.addInstance("aa01", APP_A, "127.0.2.2");
    // The CVM's own certificate, from a CA the gateway knows nothing about.
    backendCa = createCa();
    const leaf = issueLeaf(backendCa, {
      sans: ["backend.internal.example", "shop.customer.example"],
    });
    backendCertPem = leaf.certPem;
    tlsBackend = createTlsServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => {
      s.on("data", (d: Buffer) => {
        received.push(d);
        s.end(`backend saw ${s.servername}: ${d.toString().trim()}\n`);
      });
    });
    await new Promise<void>((r) => tlsBackend.listen(8443, "127.0.2.2", r));
    await new Promise<void>((r) => tlsBackend.listen(443, "127.0.2.2", r)).catch(() => undefined);
    plain = await httpBackend("a-9000", "127.0.2.2", 9000);
  });

  afterAll(async () => {
    await new Promise<void>((r) => tlsBackend.close(() => r()));
    await plain.close();
    backendCa.cleanup();
    await lab?.close();
  });

  async function sClient(servername: string, input: string, ca = backendCa.certFile) {
    return run(
      "openssl",
      [
        "s_client",
        "-connect",
        `127.0.0.1:${lab.port}`,
        "-servername",
        servername,
        "-CAfile",
        ca,
        "-verify_return_error",
        "-ign_eof",
      ],
      {
        input,
        timeoutMs: 10_000,
      },
    );
  }

  describe("TLS passthrough (s suffix)", () => {
    it("the client sees the backend's own certificate and its bytes arrive unchanged (openssl s_client)", async () => {
      const r = await sClient(`${APP_A}-8443s.${TEST_DOMAIN}`, "ping\n");
      expect(r.stdout).toContain("Verification: OK");
      // s_client prints the served certificate: it is the backend's, byte for byte.
      const served = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(
        r.stdout,
      )?.[0];
      expect(served?.replace(/\s/g, "")).toBe(backendCertPem.trim().replace(/\s/g, ""));
      expect(r.stdout).toContain(`backend saw ${APP_A}-8443s.${TEST_DOMAIN}: ping`);
    });

    it("the gateway's own CA cannot verify a passthrough connection (it never terminates it)", async () => {
      const r = await sClient(`${APP_A}-8443s.${TEST_DOMAIN}`, "x\n", lab.ca.certFile);
      expect(r.stdout).not.toContain("Verification: OK");
    });
  });

  describe("custom domains (TXT record, always passthrough)", () => {
    it("a TXT _dstack-app-address record routes the domain to the app's port", async () => {
      lab.dns.setTxt("_dstack-app-address.shop.customer.example", [`${APP_A}:8443`]);
      const r = await sClient("shop.customer.example", "order\n");
      expect(r.stdout).toContain("Verification: OK");
      expect(r.stdout).toContain("backend saw shop.customer.example: order");
    });

    it("the legacy _tapp-address prefix works too", async () => {
      lab.dns.setTxt("_tapp-address.old.customer.example", [`${APP_A}:8443`]);
      const r = await sClient("old.customer.example", "legacy\n");
      expect(r.stdout).toContain("backend saw old.customer.example: legacy");
    });

    it("a _dstack-app-address-wildcard record routes every name one label below its parent", async () => {
      lab.dns.setTxt("_dstack-app-address-wildcard.shops.customer.example", [`${APP_A}:8443`]);
      for (const name of ["one.shops.customer.example", "two.shops.customer.example"]) {
        const r = await sClient(name, "wild\n");
        expect(r.stdout).toContain(`backend saw ${name}: wild`);
      }
    });

    it("a TXT naming an unknown app is rejected, counted, and nothing is connected", async () => {
      lab.dns.setTxt("_dstack-app-address.ghost.customer.example", ["ffff00:443"]);
      const before = lab.plane.proxy.stats.rejections().get("E_CUSTOM_UNKNOWN_APP") ?? 0;
      const r = await sClient("ghost.customer.example", "x\n");
      expect(r.stdout).not.toContain("backend saw");
      expect(lab.plane.proxy.stats.rejections().get("E_CUSTOM_UNKNOWN_APP")).toBe(before + 1);
    });

    it("a malformed TXT value is a named rejection", async () => {
      lab.dns.setTxt("_dstack-app-address.bad.customer.example", ["not-an-address"]);
      await sClient("bad.customer.example", "x\n");
      expect(lab.plane.proxy.stats.rejections().get("E_CUSTOM_BAD_TXT")).toBe(1);
    });

    it("a TXT chooses an app, never an address: an unregistered app's IP is never dialled", async () => {
      lab.dns.setTxt("_dstack-app-address.evil.customer.example", ["127.0.2.2:9000"]);
      const before = plain.accepted;
      await sClient("evil.customer.example", "x\n");
      expect(plain.accepted).toBe(before);
    });
  });

  describe("other apps stay apart", () => {
    it("an app without instances is rejected even when another app is up", async () => {
      const r = await curl(lab, `${APP_B}-9000.${TEST_DOMAIN}`);
      expect(r.code).not.toBe(0);
      expect(lab.plane.proxy.stats.rejections().get("E_ROUTE_UNKNOWN_APP")).toBeGreaterThanOrEqual(
        1,
      );
    });
  });
});
