/**
 * Checks a certificate chain and key before they go live: the key matches the leaf, the leaf
 * covers every required name, it is not expired, and each certificate is signed by the next.
 * Pure (no I/O); `now` is passed in.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { CertError, reasonOf } from "./errors.js";

export interface CertificateInfo {
  /** Upper-case hex, as `X509Certificate.serialNumber` spells it. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** DNS names of the subjectAltName extension. */
  readonly names: readonly string[];
  readonly issuer: string;
  readonly fingerprint256: string;
}

/** The PEM blocks of a chain, in order. */
export function splitPemChain(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** DNS names from Node's `subjectAltName` text, e.g. `DNS:*.a.example, DNS:a.example`. */
export function dnsNames(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(/,\s*/)
    .filter((part) => part.startsWith("DNS:"))
    .map((part) => part.slice(4).replace(/^"|"$/g, "").toLowerCase());
}

export function describe(cert: X509Certificate): CertificateInfo {
  return {
    serial: cert.serialNumber.toUpperCase(),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    names: dnsNames(cert.subjectAltName),
    issuer: cert.issuer.replace(/\n/g, ", "),
    fingerprint256: cert.fingerprint256,
  };
}

/** The leaf of a PEM chain, described; throws E_CERT_INVALID when unparsable. */
export function inspectChain(certPem: string): CertificateInfo {
  const first = splitPemChain(certPem)[0];
  if (first === undefined) throw new CertError("E_CERT_INVALID", "no certificate in the chain");
  try {
    return describe(new X509Certificate(first));
  } catch (e) {
    throw new CertError("E_CERT_INVALID", `unreadable certificate: ${reasonOf(e)}`, { cause: e });
  }
}

/** Why the certificate does not cover `names`, or undefined when it does (exact names). */
export function missingNames(info: CertificateInfo, names: readonly string[]): string[] {
  return names.filter((n) => !info.names.includes(n.toLowerCase()));
}

/** Full check of a chain and key for `names` at `now`; returns the leaf's description. */
export function verifyCertificate(
  certPem: string,
  keyPem: string,
  names: readonly string[],
  now: number,
): CertificateInfo {
  const blocks = splitPemChain(certPem);
  if (blocks.length === 0) throw new CertError("E_CERT_INVALID", "no certificate in the chain");
  let chain: X509Certificate[];
  try {
    chain = blocks.map((b) => new X509Certificate(b));
  } catch (e) {
    throw new CertError("E_CERT_INVALID", `unreadable certificate: ${reasonOf(e)}`, { cause: e });
  }
  const leaf = chain[0] as X509Certificate;
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new CertError("E_CERT_INVALID", `unreadable private key: ${reasonOf(e)}`, { cause: e });
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new CertError("E_CERT_INVALID", "the private key does not match the certificate");
  }
  const info = describe(leaf);
  const missing = missingNames(info, names);
  if (missing.length > 0) {
    throw new CertError("E_CERT_INVALID", `the certificate does not cover ${missing.join(", ")}`);
  }
  if (info.notAfter.getTime() <= now) {
    throw new CertError(
      "E_CERT_INVALID",
      `the certificate expired at ${info.notAfter.toISOString()}`,
    );
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i] as X509Certificate;
    const parent = chain[i + 1] as X509Certificate;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new CertError(
        "E_CERT_INVALID",
        `certificate ${i} of the chain is not signed by ${i + 1}`,
      );
    }
  }
  return info;
}
