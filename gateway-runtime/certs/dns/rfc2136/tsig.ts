/**
 * TSIG (RFC 8945) with HMAC-SHA256 or HMAC-SHA512: sign a request, check the signed answer.
 * The MAC of a request covers the message as built (TSIG not yet added) and the TSIG variables;
 * the MAC of the answer covers our request MAC, the answer without its TSIG record (with the
 * original ID and one less additional record) and its TSIG variables.
 *
 * dns-packet places the TSIG record (type 250) but carries its data as opaque bytes and has no
 * notion of the MAC input, so the TSIG data and the canonical variables (§4.3.3: names
 * lower-cased, uncompressed) are written and read here.
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import dnsPacket from "dns-packet";

export type TsigAlgorithm = "hmac-sha256" | "hmac-sha512";

export interface TsigKey {
  /** Key name as configured on the server, e.g. `gateway-key`. */
  readonly name: string;
  readonly algorithm: TsigAlgorithm;
  readonly secret: Buffer;
}

/** Seconds of clock difference accepted either way (RFC 8945 recommends 300). */
export const TSIG_FUDGE = 300;

export const TSIG_ERRORS: Readonly<Record<number, string>> = {
  16: "BADSIG",
  17: "BADKEY",
  18: "BADTIME",
  22: "BADTRUNC",
};

const CLASS_ANY = 255;
const HASH: Record<TsigAlgorithm, string> = { "hmac-sha256": "sha256", "hmac-sha512": "sha512" };

interface TsigFields {
  readonly algorithm: string;
  readonly timeSigned: number;
  readonly fudge: number;
  readonly mac: Buffer;
  readonly originalId: number;
  readonly error: number;
  readonly other: Buffer;
}

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);

function u48(seconds: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(seconds, 0, 6);
  return b;
}

/** The TSIG variables of RFC 8945 §4.3.3, in canonical form. */
function variables(key: TsigKey, f: Omit<TsigFields, "mac" | "originalId">): Buffer {
  return Buffer.concat([
    dnsPacket.name.encode(key.name.toLowerCase()),
    u16(CLASS_ANY),
    Buffer.alloc(4), // TTL
    dnsPacket.name.encode(f.algorithm.toLowerCase()),
    u48(f.timeSigned),
    u16(f.fudge),
    u16(f.error),
    u16(f.other.length),
    f.other,
  ]);
}

function hmac(key: TsigKey, ...parts: Buffer[]): Buffer {
  const h = createHmac(HASH[key.algorithm], key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Signs `message` (which has no TSIG yet): returns it with the TSIG record, and the MAC. */
export function signMessage(
  message: Buffer,
  key: TsigKey,
  timeSigned: number,
): { message: Buffer; mac: Buffer } {
  const fields = { algorithm: key.algorithm, timeSigned, fudge: TSIG_FUDGE, error: 0 };
  const mac = hmac(key, message, variables(key, { ...fields, other: Buffer.alloc(0) }));
  const data = Buffer.concat([
    dnsPacket.name.encode(key.algorithm),
    u48(timeSigned),
    u16(TSIG_FUDGE),
    u16(mac.length),
    mac,
    u16(message.readUInt16BE(0)), // original ID
    u16(0), // error
    u16(0), // other length
  ]);
  const rr = dnsPacket.answer.encode({ type: "TSIG", name: key.name, class: "ANY", ttl: 0, data });
  const signed = Buffer.concat([message, rr]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10); // ARCOUNT
  return { message: signed, mac };
}

/** The TSIG data; its algorithm name is never compressed (RFC 8945 §4.2, RFC 3597 §4). */
function parseTsig(data: Buffer): TsigFields {
  const algorithm = dnsPacket.name.decode(data, 0);
  let p = dnsPacket.name.decode.bytes;
  const need = (n: number): void => {
    if (p + n > data.length) throw new Error("TSIG record is truncated");
  };
  need(10);
  const timeSigned = data.readUIntBE(p, 6);
  const fudge = data.readUInt16BE(p + 6);
  const macSize = data.readUInt16BE(p + 8);
  p += 10;
  need(macSize + 6);
  const mac = data.subarray(p, p + macSize);
  p += macSize;
  const originalId = data.readUInt16BE(p);
  const error = data.readUInt16BE(p + 2);
  const otherLen = data.readUInt16BE(p + 4);
  p += 6;
  need(otherLen);
  const other = data.subarray(p, p + otherLen);
  return { algorithm, timeSigned, fudge, mac, originalId, error, other };
}

/**
 * The answer without its last additional record (ARCOUNT one less), the offset where that
 * record starts, and the record. dns-packet gives no offsets, so the message is decoded
 * with one record less: where that decoding ends, the last record begins.
 */
function splitLast(raw: Buffer): { body: Buffer; last: dnsPacket.Answer; earlier: boolean } {
  const body = Buffer.from(raw);
  body.writeUInt16BE(raw.readUInt16BE(10) - 1, 10);
  const withoutLast = dnsPacket.decode(body);
  const at = dnsPacket.decode.bytes;
  const last = dnsPacket.answer.decode(raw, at);
  const earlier = (withoutLast.additionals ?? []).some((rr) => rr.type === "TSIG");
  return { body: body.subarray(0, at), last, earlier };
}

/**
 * Checks the TSIG of an answer to a request we signed with `requestMac`. Returns undefined when
 * it is good, else why not. A server that could not verify our request answers with a TSIG
 * error (BADSIG, BADKEY, BADTIME) and no MAC; that is reported as such.
 */
export function verifyResponse(
  raw: Buffer,
  key: TsigKey,
  requestMac: Buffer,
  nowSeconds: number,
): string | undefined {
  if (raw.length < 12 || raw.readUInt16BE(10) === 0) return "the answer is not signed";
  let split: ReturnType<typeof splitLast>;
  let f: TsigFields;
  try {
    split = splitLast(raw);
    if (split.last.type !== "TSIG") return "the answer is not signed";
    if (split.earlier) return "the answer has a TSIG record that is not the last one";
    f = parseTsig(split.last.data);
  } catch (e) {
    return `unreadable TSIG record: ${(e as Error).message}`;
  }
  if (f.error !== 0) {
    return `the server rejected our TSIG: ${TSIG_ERRORS[f.error] ?? `error ${f.error}`}`;
  }
  const { last, body } = split;
  if (last.name.toLowerCase().replace(/\.$/, "") !== key.name.toLowerCase().replace(/\.$/, "")) {
    return `the answer is signed with key "${last.name}", not "${key.name}"`;
  }
  if (f.algorithm.toLowerCase().replace(/\.$/, "") !== key.algorithm) {
    return `the answer is signed with ${f.algorithm}, not ${key.algorithm}`;
  }
  body.writeUInt16BE(f.originalId, 0);
  const expected = hmac(key, u16(requestMac.length), requestMac, body, variables(key, f));
  if (f.mac.length !== expected.length || !timingSafeEqual(f.mac, expected)) {
    return "the answer's TSIG MAC does not verify (wrong key, or the answer was altered)";
  }
  if (Math.abs(nowSeconds - f.timeSigned) > f.fudge) {
    return `the answer was signed at ${f.timeSigned}, outside ${f.fudge} s of our clock`;
  }
  return undefined;
}
