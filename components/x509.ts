/**
 * The region's etcd PKI as pure functions: a CA, and leaf certificates it signs. Node can make
 * keys but not certificates, so node-forge builds and signs them. Its X.509 code signs with RSA
 * only, hence RSA 2048 throughout (etcd 3.4 and Node's TLS accept it); the keys come from
 * node:crypto, which is native and much faster than node-forge's own RSA key generation.
 * The `EtcdCa` and `EtcdCertificate` providers load this module by path when they run.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import forge from "node-forge";

export interface IssuedPair {
  readonly certPem: string;
  /** PKCS#8 PEM. */
  readonly keyPem: string;
}

/** `member`: an etcd member (serves clients and peers, dials peers); `client`: dials only. */
export type LeafUsage = "member" | "client";

export interface LeafRequest {
  readonly commonName: string;
  /** Subject alternative names: DNS names and IP addresses (v4 or v6). */
  readonly dnsNames: readonly string[];
  readonly ips: readonly string[];
  readonly usage: LeafUsage;
}

/**
 * Long lives, because nothing renews them on its own: a certificate is replaced by replacing
 * its Pulumi resource (`pulumi up --replace <urn>`; the CA's replacement re-issues every leaf).
 */
export const VALIDITY_YEARS = { ca: 10, leaf: 3 } as const;

function newKey(): {
  key: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
  pem: string;
} {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const key = forge.pki.privateKeyFromPem(pem);
  return { key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e), pem };
}

/** node-forge writes PEM with CRLF line ends; everything else here uses LF. */
const pemOf = (cert: forge.pki.Certificate) =>
  forge.pki.certificateToPem(cert).replaceAll("\r\n", "\n");

function newCertificate(publicKey: forge.pki.rsa.PublicKey, years: number, now: Date) {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // 128 random bits, positive (a leading 0 bit: DER integers are signed).
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f;
  cert.serialNumber = serial.toString("hex");
  // An hour back, so a host whose clock is a little behind the deployer's accepts it at once.
  cert.validity.notBefore = new Date(now.getTime() - 3600_000);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + years);
  cert.validity.notAfter = notAfter;
  return cert;
}

/** A self-signed CA: it signs certificates only (no path below it). */
export function issueCa(commonName: string, now = new Date()): IssuedPair {
  const { key, publicKey, pem } = newKey();
  const cert = newCertificate(publicKey, VALIDITY_YEARS.ca, now);
  const name = [{ name: "commonName", value: commonName }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return { certPem: pemOf(cert), keyPem: pem };
}

/** A leaf signed by `ca`, for TLS server and client (`member`) or client only (`client`). */
export function issueLeaf(ca: IssuedPair, request: LeafRequest, now = new Date()): IssuedPair {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const { publicKey, pem } = newKey();
  const cert = newCertificate(publicKey, VALIDITY_YEARS.leaf, now);
  cert.setSubject([{ name: "commonName", value: request.commonName }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [
    ...request.dnsNames.map((value) => ({ type: 2, value })),
    ...request.ips.map((ip) => {
      if (isIP(ip) === 0) throw new Error(`not an IP address: ${ip}`);
      return { type: 7, ip };
    }),
  ];
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    {
      name: "extKeyUsage",
      serverAuth: request.usage === "member",
      clientAuth: true,
    },
    ...(altNames.length > 0 ? [{ name: "subjectAltName", altNames }] : []),
    { name: "subjectKeyIdentifier" },
    {
      name: "authorityKeyIdentifier",
      keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes(),
    },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: pemOf(cert), keyPem: pem };
}
