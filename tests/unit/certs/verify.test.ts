import { afterAll, describe, expect, it } from "vitest";
import { CertError } from "../../../gateway-runtime/certs/errors.js";
import {
  dnsNames,
  inspectChain,
  splitPemChain,
  verifyCertificate,
} from "../../../gateway-runtime/certs/verify.js";
import { createCa, issueLeaf, TEST_SANS } from "../../../testkit/certs.js";

const ca = createCa();
const other = createCa();
afterAll(() => {
  ca.cleanup();
  other.cleanup();
});

const NAMES = [...TEST_SANS];
const leaf = issueLeaf(ca);
const chain = `${leaf.certPem}${ca.certPem}`;

const failure = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CertError);
    expect((e as CertError).code).toBe("E_CERT_INVALID");
    return (e as Error).message;
  }
  throw new Error("expected a failure");
};

describe("verifyCertificate", () => {
  it("accepts a matching pair for the names and describes the leaf", () => {
    const info = verifyCertificate(chain, leaf.keyPem, NAMES, Date.now());
    expect(info.serial).toBe(leaf.serial.toUpperCase());
    expect(info.names).toEqual(NAMES);
    expect(info.notAfter.getTime()).toBeGreaterThan(Date.now());
  });

  it("accepts RSA keys too", () => {
    const rsa = issueLeaf(ca, { key: "rsa" });
    expect(verifyCertificate(rsa.certPem, rsa.keyPem, NAMES, Date.now()).serial).toBe(
      rsa.serial.toUpperCase(),
    );
  });

  it.each([
    [
      "a key of another certificate",
      () => verifyCertificate(chain, issueLeaf(ca).keyPem, NAMES, Date.now()),
      /does not match/,
    ],
    [
      "a missing apex",
      () => {
        const l = issueLeaf(ca, { sans: [NAMES[0] as string] });
        return verifyCertificate(l.certPem, l.keyPem, NAMES, Date.now());
      },
      /does not cover app.test.example$/,
    ],
    [
      "other names",
      () => {
        const l = issueLeaf(ca, { sans: ["*.other.example"] });
        return verifyCertificate(l.certPem, l.keyPem, NAMES, Date.now());
      },
      /does not cover \*.app.test.example, app.test.example/,
    ],
    [
      "an expired certificate",
      () => verifyCertificate(chain, leaf.keyPem, NAMES, Date.now() + 3 * 86_400_000),
      /expired/,
    ],
    [
      "a chain in the wrong order",
      () => verifyCertificate(`${leaf.certPem}${other.certPem}`, leaf.keyPem, NAMES, Date.now()),
      /not signed by 1/,
    ],
    [
      "no certificate",
      () => verifyCertificate("garbage", leaf.keyPem, NAMES, Date.now()),
      /no certificate/,
    ],
    [
      "an unreadable key",
      () =>
        verifyCertificate(
          chain,
          "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
          NAMES,
          Date.now(),
        ),
      /unreadable private key/,
    ],
  ])("rejects %s", (_what, f, message) => {
    expect(failure(f)).toMatch(message);
  });
});

describe("helpers", () => {
  it("splits a chain and reads SAN DNS names", () => {
    expect(splitPemChain(chain)).toHaveLength(2);
    expect(dnsNames("DNS:*.A.example, IP Address:127.0.0.1, DNS:a.example")).toEqual([
      "*.a.example",
      "a.example",
    ]);
    expect(dnsNames(undefined)).toEqual([]);
    expect(inspectChain(chain).names).toEqual(NAMES);
  });
});
