/**
 * A certificate and its key as the gateway's TLS listeners load them: the proxy's terminator
 * and the registration RPC server read and check them here, so both refuse the same bad pairs
 * (unparsable, a key that is not the certificate's, expired) with the same messages.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";

export interface CertInfo {
  /** Hex, upper case, as `X509Certificate.serialNumber`. */
  serial: string;
  notAfter: Date;
  /** The DNS names of subjectAltName (other entry types are left out). */
  subjectAltNames: string[];
  /** SHA-256 of the DER, colon-separated hex, as `X509Certificate.fingerprint256`. */
  fingerprint256: string;
}

const reasonOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function dnsNames(san: string | undefined): string[] {
  return (san ?? "")
    .split(", ")
    .filter((entry) => entry.startsWith("DNS:"))
    .map((entry) => entry.slice(4));
}

/** Parses and checks a certificate and key; throws an Error whose message is the reason. */
export function verifyPair(
  cert: string,
  key: string,
  now: number,
): { info: CertInfo; notBefore: Date } {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`certificate is not a PEM X.509 certificate (${reasonOf(e)})`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new Error(`private key is unparsable (${reasonOf(e)})`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new Error(`private key does not match certificate ${x509.serialNumber}`);
  }
  const notAfter = new Date(x509.validTo);
  if (!(notAfter.getTime() > now)) {
    throw new Error(`certificate ${x509.serialNumber} expired at ${notAfter.toISOString()}`);
  }
  const info: CertInfo = {
    serial: x509.serialNumber,
    notAfter,
    subjectAltNames: dnsNames(x509.subjectAltName),
    fingerprint256: x509.fingerprint256,
  };
  return { info, notBefore: new Date(x509.validFrom) };
}

export interface LoadedPair {
  readonly cert: string;
  readonly key: string;
  readonly info: CertInfo;
  readonly notBefore: Date;
}

/** Reads and checks a certificate chain file and its key file; throws an Error whose message is the reason. */
export async function readPair(
  certFile: string,
  keyFile: string,
  now = Date.now(),
): Promise<LoadedPair> {
  const read = (file: string) =>
    readFile(file, "utf8").catch((e: unknown) => {
      throw new Error(`cannot read ${file} (${reasonOf(e)})`);
    });
  const [cert, key] = await Promise.all([read(certFile), read(keyFile)]);
  return { cert, key, ...verifyPair(cert, key, now) };
}
