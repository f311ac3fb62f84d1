/**
 * Just enough strict DER reading to take an X.509 certificate apart: the exact bytes of its
 * SubjectPublicKeyInfo (RA-TLS hashes them into the quote's report_data, so a re-encoding would
 * not do) and its extensions by OID. Node's X509Certificate exposes neither. Pure, no I/O.
 */
import { GatewayError } from "../errors.js";

export interface Tlv {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** Offset one past the last content byte. */
  readonly end: number;
}

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  sequence: 0x30,
  explicit0: 0xa0,
  explicit3: 0xa3,
} as const;

function bad(message: string): GatewayError<"E_ATTEST_BAD_CERT"> {
  return new GatewayError("E_ATTEST_BAD_CERT", `malformed DER: ${message}`);
}

/** Reads one TLV at `offset` that must end by `limit`. Only low tag numbers, definite lengths. */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): Tlv {
  if (offset + 2 > limit) throw bad(`truncated header at ${offset}`);
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw bad(`high tag number at ${offset}`);
  const first = buf[offset + 1] as number;
  let length = first;
  let contentStart = offset + 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0) throw bad(`indefinite length at ${offset}`);
    if (count > 4) throw bad(`length of ${count} bytes at ${offset}`);
    if (contentStart + count > limit) throw bad(`truncated length at ${offset}`);
    length = 0;
    for (let k = 0; k < count; k++) length = length * 256 + (buf[contentStart + k] as number);
    contentStart += count;
    // DER: the shortest form only.
    if (length < 0x80 || (count > 1 && buf[offset + 2] === 0)) {
      throw bad(`non-minimal length at ${offset}`);
    }
  }
  const end = contentStart + length;
  if (end > limit) throw bad(`content runs past its container at ${offset}`);
  return { tag, start: offset, contentStart, end };
}

/** The TLVs directly inside a constructed `parent`, which they must fill exactly. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let at = parent.contentStart;
  while (at < parent.end) {
    const child = readTlv(buf, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

/** Reads a whole buffer as exactly one TLV with tag `tag`. */
export function readWhole(buf: Uint8Array, tag: number, what: string): Tlv {
  const tlv = readTlv(buf, 0);
  if (tlv.tag !== tag)
    throw bad(`${what}: expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  if (tlv.end !== buf.length) throw bad(`${what}: ${buf.length - tlv.end} trailing bytes`);
  return tlv;
}

/** The contents of a DER OCTET STRING that fills `buf` (how RA-TLS wraps extension values). */
export function readOctetString(buf: Uint8Array, what: string): Buffer {
  const tlv = readWhole(buf, TAG.octetString, what);
  return Buffer.from(buf.subarray(tlv.contentStart, tlv.end));
}

/** Dotted form of an OBJECT IDENTIFIER's contents. */
export function decodeOid(content: Uint8Array): string {
  if (content.length === 0) throw bad("empty OID");
  const arcs: bigint[] = [];
  let value = 0n;
  let fresh = true;
  for (const byte of content) {
    if (fresh && byte === 0x80) throw bad("non-minimal OID arc");
    value = (value << 7n) | BigInt(byte & 0x7f);
    fresh = false;
    if ((byte & 0x80) === 0) {
      arcs.push(value);
      value = 0n;
      fresh = true;
    }
  }
  if (!fresh) throw bad("truncated OID arc");
  const head = arcs[0] as bigint;
  const [x, y] = head < 40n ? [0n, head] : head < 80n ? [1n, head - 40n] : [2n, head - 80n];
  return [x, y, ...arcs.slice(1)].join(".");
}

export interface CertExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The extnValue OCTET STRING's contents (the extension's own DER). */
  readonly value: Buffer;
}

export interface CertParts {
  /** The exact DER bytes of the SubjectPublicKeyInfo. */
  readonly spki: Buffer;
  readonly extensions: readonly CertExtension[];
}

/** Splits a DER certificate into its SubjectPublicKeyInfo and its extensions. */
export function certificateParts(der: Uint8Array): CertParts {
  const cert = readWhole(der, TAG.sequence, "certificate");
  const [tbs] = children(der, cert);
  if (tbs?.tag !== TAG.sequence) throw bad("certificate without a TBSCertificate");
  const fields = children(der, tbs);
  let k = fields[0]?.tag === TAG.explicit0 ? 1 : 0;
  // serialNumber, signature, issuer, validity, subject, then subjectPublicKeyInfo
  const expected = [TAG.integer, TAG.sequence, TAG.sequence, TAG.sequence, TAG.sequence];
  for (const tag of expected) {
    if (fields[k]?.tag !== tag) throw bad(`unexpected TBSCertificate field ${k}`);
    k++;
  }
  const spkiTlv = fields[k];
  if (spkiTlv?.tag !== TAG.sequence) throw bad("TBSCertificate without a SubjectPublicKeyInfo");
  const spki = Buffer.from(der.subarray(spkiTlv.start, spkiTlv.end));
  const extField = fields.slice(k + 1).find((f) => f.tag === TAG.explicit3);
  const extensions: CertExtension[] = [];
  if (extField) {
    const [list, ...rest] = children(der, extField);
    if (list?.tag !== TAG.sequence || rest.length > 0) throw bad("bad extensions field");
    for (const ext of children(der, list)) {
      if (ext.tag !== TAG.sequence) throw bad("extension is not a SEQUENCE");
      const parts = children(der, ext);
      const [oid, second, third] = parts;
      if (oid?.tag !== TAG.oid) throw bad("extension without an OID");
      let critical = false;
      let value = second;
      if (second?.tag === TAG.boolean) {
        critical = second.end - second.contentStart === 1 && der[second.contentStart] === 0xff;
        value = third;
      }
      if (value?.tag !== TAG.octetString || parts.indexOf(value) !== parts.length - 1) {
        throw bad("extension without an extnValue OCTET STRING");
      }
      extensions.push({
        oid: decodeOid(der.subarray(oid.contentStart, oid.end)),
        critical,
        value: Buffer.from(der.subarray(value.contentStart, value.end)),
      });
    }
  }
  return { spki, extensions };
}
