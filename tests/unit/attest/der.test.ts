import { spawnSync } from "node:child_process";
import { createPublicKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { certificateParts, decodeOid, readTlv } from "../../../gateway-runtime/attest/der.js";
import { readRaTlsCertificate } from "../../../gateway-runtime/attest/extensions.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import {
  createTestCa,
  issueCert,
  issueRaTlsCert,
  OID,
  oid,
  raTlsExt,
  tlv,
} from "../../../testkit/ra-tls.js";

const ca = createTestCa();

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof GatewayError ? err.code : `not a GatewayError: ${String(err)}`;
  }
  return "no error";
}

describe("readTlv", () => {
  it.each([
    ["short form", "0403aabbcc", { tag: 4, contentStart: 2, end: 5 }],
    [
      "long form, one byte",
      `0481${"80"}${"00".repeat(128)}`,
      { tag: 4, contentStart: 3, end: 131 },
    ],
    ["long form, two bytes", `048201f4${"00".repeat(500)}`, { tag: 4, contentStart: 4, end: 504 }],
  ])("reads %s", (_, hex, want) => {
    expect(readTlv(Buffer.from(hex, "hex"), 0)).toEqual({ start: 0, ...want });
  });

  it.each([
    ["truncated header", "04"],
    ["content past the end", "0405aabb"],
    ["indefinite length", "0480aabb0000"],
    ["non-minimal long form", "048103aabbcc"],
    ["leading zero length byte", `04820080${"00".repeat(128)}`],
    ["high tag number", "1f0100"],
    ["five length bytes", "04850000000001aa"],
  ])("refuses %s with E_ATTEST_BAD_CERT", (_, hex) => {
    expect(code(() => readTlv(Buffer.from(hex, "hex"), 0))).toBe("E_ATTEST_BAD_CERT");
  });
});

describe("decodeOid", () => {
  it.each([
    "1.3.6.1.4.1.62397.1.9",
    "2.5.29.19",
    "1.2.840.10045.4.3.2",
    "2.999.18446744073709551616",
    "0.39",
  ])("round-trips %s", (dotted) => {
    const der = oid(dotted);
    expect(decodeOid(der.subarray(2))).toBe(dotted);
  });

  it("refuses a truncated arc and a non-minimal arc", () => {
    expect(code(() => decodeOid(Buffer.from([0x2b, 0x86])))).toBe("E_ATTEST_BAD_CERT");
    expect(code(() => decodeOid(Buffer.from([0x2b, 0x80, 0x01])))).toBe("E_ATTEST_BAD_CERT");
  });
});

describe("certificateParts", () => {
  it("returns the exact SubjectPublicKeyInfo bytes, equal to what Node exports", () => {
    const leaf = issueCert({ subject: "x", issuer: ca });
    const { spki } = certificateParts(leaf.der);
    expect(spki.equals(leaf.spki)).toBe(true);
    expect(spki.equals(createPublicKey(leaf.key).export({ type: "spki", format: "der" }))).toBe(
      true,
    );
  });

  it("finds every extension with its OID, criticality and value (property)", () => {
    const arb = fc.array(
      fc.record({
        arc: fc.integer({ min: 0, max: 2 ** 31 }),
        critical: fc.boolean(),
        value: fc.uint8Array({ minLength: 0, maxLength: 300 }),
      }),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(arb, (exts) => {
        const specs = exts.map((e, k) => ({
          oid: `1.3.6.1.4.1.55555.${k}.${e.arc}`,
          critical: e.critical,
          value: Buffer.from(e.value),
        }));
        const cert = issueCert({ subject: "p", issuer: ca, extensions: specs });
        const got = certificateParts(cert.der).extensions.filter((x) =>
          x.oid.startsWith("1.3.6.1.4.1.55555."),
        );
        expect(got).toEqual(specs.map((s) => ({ ...s, value: Buffer.from(s.value) })));
      }),
      { numRuns: 25 },
    );
  });

  it("reads a certificate that OpenSSL built with RA-TLS extensions", () => {
    const dir = mkdtempSync(join(tmpdir(), "ratls-openssl-"));
    try {
      const appId = "aa".repeat(20);
      const hexBytes = (b: Buffer) => b.toString("hex").match(/../g)?.join(":");
      const run = (args: string[]) => {
        const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
        if (r.status !== 0) throw new Error(r.stderr);
      };
      run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "k.pem"]);
      const usage = Buffer.from("app:custom");
      run([
        ...["req", "-new", "-x509", "-key", "k.pem", "-subj", "/CN=o", "-days", "1"],
        ...["-addext", `${OID.appId}=DER:04:14:${hexBytes(Buffer.from(appId, "hex"))}`],
        ...["-addext", `${OID.certUsage}=DER:04:0a:${hexBytes(usage)}`],
        ...["-out", "c.pem"],
      ]);
      const der = new X509Certificate(readFileSync(join(dir, "c.pem"))).raw;
      const { ext, spki } = readRaTlsCertificate(der);
      expect(ext.appId?.toString("hex")).toBe(appId);
      expect(ext.certUsage?.toString()).toBe("app:custom");
      const key = createPublicKey(readFileSync(join(dir, "k.pem")));
      expect(spki.equals(key.export({ type: "spki", format: "der" }))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses trailing bytes, a duplicated RA-TLS extension and an unwrapped value", () => {
    const good = issueRaTlsCert(ca, {});
    expect(code(() => certificateParts(Buffer.concat([good.der, Buffer.from([0])])))).toBe(
      "E_ATTEST_BAD_CERT",
    );
    const twice = issueCert({
      subject: "d",
      issuer: ca,
      extensions: [raTlsExt(OID.appId, Buffer.from("a")), raTlsExt(OID.appId, Buffer.from("b"))],
    });
    expect(code(() => readRaTlsCertificate(twice.der))).toBe("E_ATTEST_BAD_CERT");
    // The value must be exactly one OCTET STRING (ra-tls wraps with yasna::write_bytes).
    const raw = issueCert({
      subject: "r",
      issuer: ca,
      extensions: [{ oid: OID.appId, value: tlv(0x0c, Buffer.from("utf8 string")) }],
    });
    expect(code(() => readRaTlsCertificate(raw.der))).toBe("E_ATTEST_BAD_CERT");
  });
});
