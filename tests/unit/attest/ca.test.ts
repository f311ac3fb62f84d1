import { describe, expect, it } from "vitest";
import { CaAttestation, x509FromDer } from "../../../gateway-runtime/attest/ca.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import {
  appInfoSpec,
  createTestCa,
  issueCert,
  issueRaTlsCert,
  raTlsExt,
  SERVER_AUTH,
} from "../../../testkit/ra-tls.js";

const APP = "3763bc34552cf3a27ff71ad5f7a90471562a1a2d";
const INSTANCE = "c3714eb66990eace777b4e664c16e09375dec4c9";

// Like a KMS: root → per-app CA → client certificate.
const root = createTestCa("KMS root");
const appCa = createTestCa("app CA", root);
const info = appInfoSpec(APP, INSTANCE);
const attestation = new CaAttestation({ caPem: root.pem });

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GatewayError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("expected a rejection");
}

describe("CaAttestation", () => {
  it("accepts a KMS-style chain and returns ids as lowercase hex from the app info", async () => {
    const leaf = issueRaTlsCert(appCa, { appInfo: info });
    const peer = await attestation.verify(leaf.der, [appCa.der, root.der]);
    expect(peer.appId).toBe(APP);
    expect(peer.instanceId).toBe(INSTANCE);
    expect(peer.via).toBe("ca");
    expect(peer.appInfo.composeHash.equals(info.composeHash)).toBe(true);
  });

  it("accepts a leaf signed by the root directly, and a bundle with several roots", async () => {
    const other = createTestCa("other root");
    const leaf = issueRaTlsCert(root, { appInfo: info });
    const both = new CaAttestation({ caPem: other.pem + root.pem });
    expect((await both.verify(leaf.der)).instanceId).toBe(INSTANCE);
  });

  it("refuses a certificate from another CA", async () => {
    const stranger = createTestCa("stranger");
    const leaf = issueRaTlsCert(stranger, { appInfo: info });
    const f = await failure(attestation.verify(leaf.der, [stranger.der]));
    expect(f.code).toBe("E_ATTEST_UNTRUSTED");
    expect(f.message).toContain("stranger");
  });

  it("refuses a chain whose intermediate is missing", async () => {
    const leaf = issueRaTlsCert(appCa, { appInfo: info });
    expect((await failure(attestation.verify(leaf.der))).code).toBe("E_ATTEST_UNTRUSTED");
  });

  it("refuses an intermediate that is not a CA", async () => {
    const notCa = issueCert({ subject: "not a CA", issuer: root });
    const leaf = issueRaTlsCert(notCa, { appInfo: info });
    expect((await failure(attestation.verify(leaf.der, [notCa.der]))).code).toBe(
      "E_ATTEST_UNTRUSTED",
    );
  });

  it("refuses a certificate whose signature was tampered with", async () => {
    const leaf = issueRaTlsCert(root, { appInfo: info });
    const bad = Buffer.from(leaf.der);
    bad[bad.length - 5] = (bad[bad.length - 5] as number) ^ 0x01;
    expect((await failure(attestation.verify(bad))).code).toBe("E_ATTEST_UNTRUSTED");
  });

  it("checks validity of every certificate against the injected clock", async () => {
    const leaf = issueRaTlsCert(appCa, {
      appInfo: info,
      notBefore: new Date("2030-01-01T00:00:00Z"),
      notAfter: new Date("2030-02-01T00:00:00Z"),
    });
    expect((await failure(attestation.verify(leaf.der, [appCa.der]))).code).toBe(
      "E_ATTEST_EXPIRED",
    );
    const later = new CaAttestation({
      caPem: root.pem,
      now: () => Date.parse("2030-01-15T00:00:00Z"),
    });
    // In 2030 the leaf is valid but the (one-day) CAs have expired.
    expect((await failure(later.verify(leaf.der, [appCa.der]))).code).toBe("E_ATTEST_EXPIRED");
  });

  it("refuses a certificate not meant for client authentication", async () => {
    const leaf = issueRaTlsCert(root, { appInfo: info, eku: [SERVER_AUTH] });
    expect((await failure(attestation.verify(leaf.der))).code).toBe("E_ATTEST_UNTRUSTED");
  });

  it("needs the app info extension, which carries the instance id", async () => {
    const leaf = issueRaTlsCert(root, { appInfo: false, appIdExt: Buffer.from(APP, "hex") });
    const f = await failure(attestation.verify(leaf.der));
    expect(f.code).toBe("E_ATTEST_NO_APP_INFO");
    expect(f.message).toContain("1.3.6.1.4.1.62397.1.9");
  });

  it("refuses an app id extension that contradicts the app info", async () => {
    const leaf = issueRaTlsCert(root, { appInfo: info, appIdExt: Buffer.alloc(20, 1) });
    expect((await failure(attestation.verify(leaf.der))).code).toBe("E_ATTEST_APP_ID_MISMATCH");
  });

  it("refuses empty app and instance ids as dstack does", async () => {
    const noInstance = issueRaTlsCert(root, { appInfo: { ...info, instanceId: Buffer.alloc(0) } });
    const f = await failure(attestation.verify(noInstance.der));
    expect(f).toEqual({ code: "E_ATTEST_EMPTY_ID", message: "instance id is empty" });
    const noApp = issueRaTlsCert(root, { appInfo: { ...info, appId: Buffer.alloc(0) } });
    expect((await failure(attestation.verify(noApp.der))).code).toBe("E_ATTEST_EMPTY_ID");
  });

  it("reads the DER it is given, not a PEM certificate embedded in it (regression)", async () => {
    // node's X509Certificate(buffer) tries PEM first and skips to any "-----BEGIN CERTIFICATE-----"
    // line: a self-signed certificate carrying a trusted one as text would pass as that one.
    const victim = issueRaTlsCert(appCa, { appInfo: info });
    const forger = createTestCa("forger");
    const forged = issueRaTlsCert(forger, {
      appInfo: appInfoSpec(APP, "ff".repeat(20)),
      more: [raTlsExt("1.3.6.1.4.1.99999.1", Buffer.from(`\n${victim.pem}`))],
    });
    const f = await failure(attestation.verify(forged.der, [appCa.der]));
    expect(f.code).toBe("E_ATTEST_UNTRUSTED");
    expect(f.message).toContain("forger");
  });

  it("parses certificates of every DER length modulo 48 (regression: blank PEM line)", () => {
    for (let pad = 0; pad < 96; pad++) {
      const cert = issueCert({
        subject: "len",
        issuer: root,
        extensions: [raTlsExt("1.3.6.1.4.1.99999.2", Buffer.alloc(pad))],
      });
      expect(x509FromDer(cert.der).raw.equals(cert.der)).toBe(true);
    }
  });

  it("refuses garbage as a certificate", async () => {
    expect((await failure(attestation.verify(Buffer.from("not DER")))).code).toBe(
      "E_ATTEST_BAD_CERT",
    );
  });

  it("refuses a CA bundle without a CA certificate", () => {
    const leaf = issueRaTlsCert(root, { appInfo: info });
    expect(() => new CaAttestation({ caPem: "nothing" })).toThrow(/no PEM certificate/);
    expect(() => new CaAttestation({ caPem: leaf.pem })).toThrow(/not a CA certificate/);
  });
});
