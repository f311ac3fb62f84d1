/**
 * RA-TLS test certificates shaped like dstack's: ECDSA P-256, signed with node:crypto, built
 * from a small DER writer of our own (@peculiar/x509 2 cannot load here: its tsyringe dependency
 * demands a reflect-metadata polyfill that is not installed). A CA (and intermediates, like the
 * KMS's app CA), and client certificates carrying the extensions under 1.3.6.1.4.1.62397.1:
 * app id (.3), usage (.4), app info (.9, MessagePack as rmp_serde writes it), and any others
 * (a quote, an event log, an attestation: see tests/unit/attest/tdx-encoders.ts).
 */
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";

// ---- DER ----------------------------------------------------------------------------------

export function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  const len =
    n < 0x80
      ? Buffer.from([n])
      : (() => {
          const bytes: number[] = [];
          for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
          return Buffer.from([0x80 | bytes.length, ...bytes]);
        })();
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...items: Uint8Array[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Uint8Array[]) => tlv(0x31, Buffer.concat(items));
export const octetString = (b: Uint8Array) => tlv(0x04, b);
const bitString = (b: Uint8Array, unused = 0) =>
  tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));

export function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split(".").map((x) => BigInt(x));
  const arcs = [(a as bigint) * 40n + (b as bigint), ...rest];
  const out: number[] = [];
  for (const arc of arcs) {
    const groups: number[] = [];
    let v = arc;
    do {
      groups.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (const [k, g] of groups.entries()) out.push(k < groups.length - 1 ? g | 0x80 : g);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14); // YYYYMMDDHHMMSS
  const y = d.getUTCFullYear();
  return y >= 1950 && y < 2050
    ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`))
    : tlv(0x18, Buffer.from(`${iso}Z`));
}

const name = (cn: string) => seq(set(seq(oid("2.5.4.3"), tlv(0x0c, Buffer.from(cn)))));

/** One extension: `value` is the extnValue contents (the extension's own DER). */
export interface ExtensionSpec {
  readonly oid: string;
  readonly value: Uint8Array;
  readonly critical?: boolean;
}

const ext = (e: ExtensionSpec) =>
  seq(oid(e.oid), ...(e.critical ? [bool(true)] : []), octetString(e.value));

// ---- certificates ---------------------------------------------------------------------------

export interface TestCert {
  readonly der: Buffer;
  readonly pem: string;
  readonly key: KeyObject;
  readonly keyPem: string;
  readonly spki: Buffer;
  readonly subject: string;
}

export interface CertSpec {
  readonly subject: string;
  /** The issuing certificate; absent = self-signed. */
  readonly issuer?: TestCert;
  readonly ca?: boolean;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Extended key usage OIDs; empty = no EKU extension. @default clientAuth for leaves */
  readonly eku?: readonly string[];
  readonly extensions?: readonly ExtensionSpec[];
  /** The certificate's key pair (e.g. to quote its SPKI before issuing). @default a new one */
  readonly keyPair?: { readonly privateKey: KeyObject; readonly publicKey: KeyObject };
}

/** A fresh ECDSA P-256 key pair and its SPKI DER. */
export function newKeyPair(): { privateKey: KeyObject; publicKey: KeyObject; spki: Buffer } {
  const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { ...pair, spki: pair.publicKey.export({ type: "spki", format: "der" }) };
}

export const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
export const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

const keyId = (spki: Buffer) => {
  // SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 method 1). For P-256 SPKI the
  // key bits are the last 65 bytes.
  return createHash("sha1")
    .update(spki.subarray(spki.length - 65))
    .digest();
};

export function issueCert(spec: CertSpec): TestCert {
  const { privateKey, publicKey } =
    spec.keyPair ?? generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const signer = spec.issuer?.key ?? privateKey;
  const issuerName = spec.issuer?.subject ?? spec.subject;
  const issuerSpki = spec.issuer?.spki ?? spki;
  const now = Date.now();
  const exts: ExtensionSpec[] = [
    { oid: "2.5.29.19", critical: true, value: seq(...(spec.ca ? [bool(true)] : [])) },
    {
      oid: "2.5.29.15",
      critical: true,
      // keyCertSign + cRLSign for CAs, digitalSignature for leaves
      value: spec.ca ? bitString(Buffer.from([0x06]), 1) : bitString(Buffer.from([0x80]), 7),
    },
    { oid: "2.5.29.14", value: octetString(keyId(spki)) },
    { oid: "2.5.29.35", value: seq(tlv(0x80, keyId(issuerSpki))) },
  ];
  const eku = spec.eku ?? (spec.ca ? [] : [CLIENT_AUTH]);
  if (eku.length > 0) exts.push({ oid: "2.5.29.37", value: seq(...eku.map(oid)) });
  exts.push(...(spec.extensions ?? []));
  const sigAlg = seq(oid("1.2.840.10045.4.3.2"));
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))),
    tlv(0x02, Buffer.concat([Buffer.from([0x01]), randomBytes(8)])),
    sigAlg,
    name(issuerName),
    seq(
      time(spec.notBefore ?? new Date(now - 60_000)),
      time(spec.notAfter ?? new Date(now + 86_400_000)),
    ),
    name(spec.subject),
    spki,
    tlv(0xa3, seq(...exts.map(ext))),
  );
  const der = seq(tbs, sigAlg, bitString(sign("sha256", tbs, signer)));
  const b64 = der.toString("base64").replace(/.{64}/g, "$&\n");
  return {
    der,
    pem: `-----BEGIN CERTIFICATE-----\n${b64.trimEnd()}\n-----END CERTIFICATE-----\n`,
    key: privateKey,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    spki,
    subject: spec.subject,
  };
}

export function createTestCa(subject = "RA-TLS test root CA", issuer?: TestCert): TestCert {
  return issueCert({ subject, ca: true, ...(issuer ? { issuer } : {}) });
}

// ---- MessagePack (the rmp_serde subset) -------------------------------------------------------

export type MsgIn =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | MsgIn[]
  | { [k: string]: MsgIn };

export function msgpack(v: MsgIn): Buffer {
  const head = (small: number, base: number, codes: [number, number, number], n: number) => {
    if (n < small) return Buffer.from([base | n]);
    if (n < 0x100 && codes[0] !== 0) return Buffer.from([codes[0], n]);
    if (n < 0x10000) return Buffer.from([codes[1], n >> 8, n & 0xff]);
    const b = Buffer.alloc(5);
    b[0] = codes[2];
    b.writeUInt32BE(n, 1);
    return b;
  };
  if (v === null) return Buffer.from([0xc0]);
  if (v === true || v === false) return Buffer.from([v ? 0xc3 : 0xc2]);
  if (typeof v === "number") {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
      throw new Error("test msgpack: uint32 only");
    if (v < 0x80) return Buffer.from([v]);
    const b = Buffer.alloc(5);
    b[0] = 0xce;
    b.writeUInt32BE(v, 1);
    return b;
  }
  if (typeof v === "string") {
    const s = Buffer.from(v, "utf8");
    return Buffer.concat([head(32, 0xa0, [0xd9, 0xda, 0xdb], s.length), s]);
  }
  if (v instanceof Uint8Array) {
    return Buffer.concat([head(0, 0, [0xc4, 0xc5, 0xc6], v.length), v]);
  }
  if (Array.isArray(v)) {
    return Buffer.concat([head(16, 0x90, [0, 0xdc, 0xdd], v.length), ...v.map(msgpack)]);
  }
  const entries = Object.entries(v);
  return Buffer.concat([
    head(16, 0x80, [0, 0xde, 0xdf], entries.length),
    ...entries.flatMap(([k, x]) => [msgpack(k), msgpack(x)]),
  ]);
}

export interface AppInfoSpec {
  appId: Buffer;
  composeHash: Buffer;
  instanceId: Buffer;
  deviceId: Buffer;
  mrSystem: Buffer;
  mrAggregated: Buffer;
  osImageHash: Buffer;
  keyProviderInfo: Buffer;
  initScriptHashes: Buffer[] | null;
}

export function appInfoSpec(appIdHex: string, instanceIdHex: string): AppInfoSpec {
  const h = (s: string) => createHash("sha256").update(s).digest();
  return {
    appId: Buffer.from(appIdHex, "hex"),
    composeHash: h(`compose ${appIdHex}`),
    instanceId: Buffer.from(instanceIdHex, "hex"),
    deviceId: h("device"),
    mrSystem: h("mr_system"),
    mrAggregated: h(`mr_aggregated ${instanceIdHex}`),
    osImageHash: h("os image"),
    keyProviderInfo: Buffer.from('{"name":"kms","id":"test"}'),
    initScriptHashes: [],
  };
}

/** `rmp_serde::to_vec(&AppInfo)`: a 9-element array in field order, bytes as `bin`. */
export function encodeAppInfo(a: AppInfoSpec): Buffer {
  return msgpack([
    a.appId,
    a.composeHash,
    a.instanceId,
    a.deviceId,
    a.mrSystem,
    a.mrAggregated,
    a.osImageHash,
    a.keyProviderInfo,
    a.initScriptHashes,
  ]);
}

// ---- RA-TLS client certificates ---------------------------------------------------------------

export const OID = {
  tdxQuote: "1.3.6.1.4.1.62397.1.1",
  eventLog: "1.3.6.1.4.1.62397.1.2",
  appId: "1.3.6.1.4.1.62397.1.3",
  certUsage: "1.3.6.1.4.1.62397.1.4",
  attestation: "1.3.6.1.4.1.62397.1.8",
  appInfo: "1.3.6.1.4.1.62397.1.9",
} as const;

/** An RA-TLS extension: raw bytes wrapped in one OCTET STRING, as ra-tls `add_ext` writes. */
export const raTlsExt = (o: string, bytes: Uint8Array): ExtensionSpec => ({
  oid: o,
  value: octetString(bytes),
});

export interface RaTlsCertSpec extends Omit<CertSpec, "subject" | "extensions"> {
  /** App info to embed (.9); false = none. */
  readonly appInfo?: AppInfoSpec | false;
  /** The app id extension (.3); default the app info's app id; false = none. */
  readonly appIdExt?: Buffer | false;
  readonly usage?: string;
  readonly more?: readonly ExtensionSpec[];
  readonly subject?: string;
}

/** A client certificate like the KMS issues for `dstack-guest-agent` (usage "app:custom"). */
export function issueRaTlsCert(issuer: TestCert, spec: RaTlsCertSpec = {}): TestCert {
  const extensions: ExtensionSpec[] = [];
  const info = spec.appInfo;
  const appId = spec.appIdExt ?? (info ? info.appId : false);
  if (appId) extensions.push(raTlsExt(OID.appId, appId));
  if (info) extensions.push(raTlsExt(OID.appInfo, encodeAppInfo(info)));
  extensions.push(raTlsExt(OID.certUsage, Buffer.from(spec.usage ?? "app:custom")));
  extensions.push(...(spec.more ?? []));
  return issueCert({ ...spec, subject: spec.subject ?? "dstack-guest-agent", issuer, extensions });
}
