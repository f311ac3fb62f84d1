/**
 * CA mode: trust a client certificate because it chains to a configured CA, and take the
 * caller's identity from the app-info extension the CA put in it. This is what dstack-gateway
 * 0.5.6+ does with KMS-issued certificates (dstack-util `system_setup.rs` asks the KMS for a
 * client certificate with `ext_app_info: true`; the KMS verified the CVM's quote before signing
 * leaf → app CA → KMS root). With a CA of your own it is the development mode: no TEE needed.
 */
import { X509Certificate } from "node:crypto";
import { appInfoJson, decodeAppInfo } from "./app-info.js";
import { readRaTlsCertificate } from "./extensions.js";
import { type Attestation, attestError, type VerifiedPeer } from "./types.js";

const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const ANY_EKU = "2.5.29.37.0";

export interface CaAttestationOptions {
  /** PEM bundle of trusted CA certificates (e.g. the KMS root). */
  readonly caPem: string;
  /** Clock for validity checks, ms since the epoch. @default Date.now */
  readonly now?: () => number;
  /** Longest accepted chain, leaf and root included. @default 5 */
  readonly maxChainLength?: number;
}

/** Splits a PEM bundle into certificates; throws `E_ATTEST_CONFIG` when there is none. */
export function parsePemBundle(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw attestError("E_ATTEST_CONFIG", `${what}: no PEM certificate`);
  return blocks.map((block, k) => {
    try {
      return new X509Certificate(block);
    } catch (cause) {
      throw attestError("E_ATTEST_CONFIG", `${what}: certificate ${k + 1} does not parse`, cause);
    }
  });
}

/**
 * Parses DER as exactly that certificate. `new X509Certificate(der)` tries PEM first and skips
 * to the first "-----BEGIN CERTIFICATE-----" line anywhere in the bytes, so a DER certificate
 * carrying PEM text (a TDX quote holds its PCK chain as PEM) would be read as the embedded one.
 */
export function x509FromDer(der: Buffer): X509Certificate {
  // No empty line before the footer (a DER length divisible by 48 would make one).
  const b64 =
    der
      .toString("base64")
      .match(/.{1,64}/g)
      ?.join("\n") ?? "";
  const cert = new X509Certificate(
    `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
  );
  if (!cert.raw.equals(der)) throw new Error("certificate has trailing data");
  return cert;
}

function within(cert: X509Certificate, now: number, role: string): void {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (!(now >= from && now <= to)) {
    throw attestError(
      "E_ATTEST_EXPIRED",
      `${role} certificate "${cert.subject.replace(/\n/g, ", ")}" is valid from ${cert.validFrom} to ${cert.validTo}, not now`,
    );
  }
}

function signs(issuer: X509Certificate, child: X509Certificate): boolean {
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

/**
 * Finds a path leaf → intermediates* → root among `intermediates` (CA certificates the client
 * sent) and `roots`, checking every signature, every validity period and the CA flag of every
 * issuer. Throws `E_ATTEST_UNTRUSTED` or `E_ATTEST_EXPIRED`.
 */
export function verifyChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
  now: number,
  maxLength = 5,
): X509Certificate[] {
  const path = [leaf];
  let current = leaf;
  const unused = [...intermediates];
  while (path.length < maxLength) {
    const root = roots.find((r) => r.ca && signs(r, current));
    if (root) {
      path.push(root);
      for (const [k, c] of path.entries()) within(c, now, k === 0 ? "client" : "CA");
      return path;
    }
    const k = unused.findIndex((i) => i.ca && signs(i, current));
    if (k < 0) break;
    current = unused.splice(k, 1)[0] as X509Certificate;
    path.push(current);
  }
  throw attestError(
    "E_ATTEST_UNTRUSTED",
    `client certificate does not chain to a trusted CA (last issuer "${current.issuer.replace(/\n/g, ", ")}")`,
  );
}

export class CaAttestation implements Attestation {
  readonly #roots: X509Certificate[];
  readonly #now: () => number;
  readonly #maxLength: number;

  constructor(options: CaAttestationOptions) {
    this.#roots = parsePemBundle(options.caPem, "trusted CA bundle");
    const notCa = this.#roots.find((r) => !r.ca);
    if (notCa) {
      throw attestError("E_ATTEST_CONFIG", `trusted CA "${notCa.subject}" is not a CA certificate`);
    }
    this.#now = options.now ?? Date.now;
    this.#maxLength = options.maxChainLength ?? 5;
  }

  async verify(peerCertDer: Buffer, chainDer: readonly Buffer[] = []): Promise<VerifiedPeer> {
    let leaf: X509Certificate;
    let chain: X509Certificate[];
    try {
      leaf = x509FromDer(peerCertDer);
      chain = chainDer.map(x509FromDer);
    } catch (cause) {
      throw attestError("E_ATTEST_BAD_CERT", "client certificate does not parse", cause);
    }
    verifyChain(leaf, chain, this.#roots, this.#now(), this.#maxLength);
    const eku = leaf.keyUsage;
    if (eku && !eku.includes(CLIENT_AUTH) && !eku.includes(ANY_EKU)) {
      throw attestError(
        "E_ATTEST_UNTRUSTED",
        "client certificate is not for client authentication",
      );
    }
    const { ext } = readRaTlsCertificate(peerCertDer);
    if (!ext.appInfo) {
      throw attestError(
        "E_ATTEST_NO_APP_INFO",
        "client certificate has no app info extension (1.3.6.1.4.1.62397.1.9): request it from the KMS with ext_app_info",
      );
    }
    const appInfo = decodeAppInfo(ext.appInfo);
    if (ext.appId && !ext.appId.equals(appInfo.appId)) {
      throw attestError(
        "E_ATTEST_APP_ID_MISMATCH",
        `app id extension ${ext.appId.toString("hex")} differs from the app info's ${appInfo.appId.toString("hex")}`,
      );
    }
    const { app_id, instance_id } = appInfoJson(appInfo);
    if (app_id === "") throw attestError("E_ATTEST_EMPTY_ID", "app id is empty");
    if (instance_id === "") throw attestError("E_ATTEST_EMPTY_ID", "instance id is empty");
    return { appId: app_id, instanceId: instance_id, appInfo, via: "ca" };
  }
}
