/**
 * dstack's RA-TLS certificate extensions (ra-tls `oids.rs`, `cert.rs`, `traits.rs`). Every value
 * is its raw bytes wrapped in one DER OCTET STRING inside extnValue (`add_ext` writes it with
 * `yasna::write_bytes`, `get_extension_bytes` reads it back the same way).
 */
import { type CertParts, certificateParts, readOctetString } from "./der.js";
import { attestError } from "./types.js";

export const RA_TLS_OID = {
  /** Raw TDX quote (legacy; with `eventLog`). */
  tdxQuote: "1.3.6.1.4.1.62397.1.1",
  /** TDX event log, JSON (optionally `ELGZv1` + gzip). */
  eventLog: "1.3.6.1.4.1.62397.1.2",
  /** Raw app id bytes (20 bytes from the KMS). */
  appId: "1.3.6.1.4.1.62397.1.3",
  /** UTF-8 special usage, e.g. "app:custom" on KMS-issued app certificates. */
  certUsage: "1.3.6.1.4.1.62397.1.4",
  /** dstack `VersionedAttestation` bytes (SCALE V0 or msgpack V1). */
  attestation: "1.3.6.1.4.1.62397.1.8",
  /** dstack `AppInfo`, rmp_serde MessagePack. */
  appInfo: "1.3.6.1.4.1.62397.1.9",
} as const;

export type RaTlsField = keyof typeof RA_TLS_OID;

export interface RaTlsCertificate {
  /** Exact DER of the certificate's SubjectPublicKeyInfo. */
  readonly spki: Buffer;
  /** The unwrapped value of each RA-TLS extension present. */
  readonly ext: Partial<Record<RaTlsField, Buffer>>;
}

/**
 * Parses a DER certificate and unwraps its RA-TLS extensions. A malformed certificate, a
 * duplicated RA-TLS extension or a value that is not one OCTET STRING is `E_ATTEST_BAD_CERT`.
 */
export function readRaTlsCertificate(der: Uint8Array): RaTlsCertificate {
  const parts: CertParts = certificateParts(der);
  const ext: Partial<Record<RaTlsField, Buffer>> = {};
  for (const [field, oid] of Object.entries(RA_TLS_OID) as [RaTlsField, string][]) {
    const found = parts.extensions.filter((e) => e.oid === oid);
    if (found.length > 1) {
      throw attestError("E_ATTEST_BAD_CERT", `extension ${oid} (${field}) appears twice`);
    }
    const [one] = found;
    if (one) ext[field] = readOctetString(one.value, `extension ${oid} (${field})`);
  }
  return { spki: parts.spki, ext };
}
