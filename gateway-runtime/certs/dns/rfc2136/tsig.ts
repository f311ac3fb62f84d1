/**
 * TSIG (RFC 8945) with HMAC-SHA256 or HMAC-SHA512: sign a request, check the signed answer.
 * The MAC of a request covers the message as built (TSIG not yet added) and the TSIG variables;
 * the MAC of the answer covers our request MAC, the answer without its TSIG record (with the
 * original ID and one less additional record) and its TSIG variables.
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import { encodeName, encodeRr, type ParsedMessage, RR_CLASS, RR_TYPE, readName } from "./wire.js";

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

function u48(seconds: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(seconds, 0, 6);
  return b;
}

/** The TSIG variables of RFC 8945 §4.3.3, in canonical form. */
function variables(key: TsigKey, f: Omit<TsigFields, "mac" | "originalId">): Buffer {
  const tail = Buffer.alloc(8);
  tail.writeUInt16BE(RR_CLASS.ANY, 0);
  tail.writeUInt32BE(0, 2); // TTL
  tail.writeUInt16BE(f.fudge, 6);
  const rest = Buffer.alloc(4);
  rest.writeUInt16BE(f.error, 0);
  rest.writeUInt16BE(f.other.length, 2);
  return Buffer.concat([
    encodeName(key.name, true),
    tail.subarray(0, 6),
    encodeName(f.algorithm, true),
    u48(f.timeSigned),
    tail.subarray(6, 8),
    rest,
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
  const fields = {
    algorithm: key.algorithm,
    timeSigned,
    fudge: TSIG_FUDGE,
    error: 0,
    other: Buffer.alloc(0),
  };
  const mac = hmac(key, message, variables(key, fields));
  const macLen = Buffer.alloc(2);
  macLen.writeUInt16BE(mac.length);
  const tail = Buffer.alloc(6);
  tail.writeUInt16BE(message.readUInt16BE(0), 0); // original ID
  tail.writeUInt16BE(0, 2); // error
  tail.writeUInt16BE(0, 4); // other length
  const fudge = Buffer.alloc(2);
  fudge.writeUInt16BE(TSIG_FUDGE);
  const rdata = Buffer.concat([
    encodeName(key.algorithm),
    u48(timeSigned),
    fudge,
    macLen,
    mac,
    tail,
  ]);
  const rr = encodeRr({ name: key.name, type: RR_TYPE.TSIG, class: RR_CLASS.ANY, ttl: 0, rdata });
  const signed = Buffer.concat([message, rr]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10); // ARCOUNT
  return { message: signed, mac };
}

function parseTsig(msg: Buffer, rdataOffset: number, rdata: Buffer): TsigFields {
  const { name: algorithm, next } = readName(msg, rdataOffset);
  let p = next - rdataOffset;
  const need = (n: number): void => {
    if (p + n > rdata.length) throw new Error("TSIG record is truncated");
  };
  need(10);
  const timeSigned = rdata.readUIntBE(p, 6);
  const fudge = rdata.readUInt16BE(p + 6);
  const macSize = rdata.readUInt16BE(p + 8);
  p += 10;
  need(macSize + 6);
  const mac = rdata.subarray(p, p + macSize);
  p += macSize;
  const originalId = rdata.readUInt16BE(p);
  const error = rdata.readUInt16BE(p + 2);
  const otherLen = rdata.readUInt16BE(p + 4);
  p += 6;
  need(otherLen);
  const other = rdata.subarray(p, p + otherLen);
  return { algorithm, timeSigned, fudge, mac, originalId, error, other };
}

/**
 * Checks the TSIG of an answer to a request we signed with `requestMac`. Returns undefined when
 * it is good, else why not. A server that could not verify our request answers with a TSIG
 * error (BADSIG, BADKEY, BADTIME) and no MAC; that is reported as such.
 */
export function verifyResponse(
  raw: Buffer,
  parsed: ParsedMessage,
  key: TsigKey,
  requestMac: Buffer,
  nowSeconds: number,
): string | undefined {
  const last = parsed.additional[parsed.additional.length - 1];
  if (last === undefined || last.type !== RR_TYPE.TSIG) return "the answer is not signed";
  if (parsed.additional.some((rr) => rr !== last && rr.type === RR_TYPE.TSIG)) {
    return "the answer has a TSIG record that is not the last one";
  }
  let f: TsigFields;
  try {
    f = parseTsig(raw, last.rdataOffset, last.rdata);
  } catch (e) {
    return (e as Error).message;
  }
  if (f.error !== 0) {
    return `the server rejected our TSIG: ${TSIG_ERRORS[f.error] ?? `error ${f.error}`}`;
  }
  if (last.name.toLowerCase().replace(/\.$/, "") !== key.name.toLowerCase().replace(/\.$/, "")) {
    return `the answer is signed with key "${last.name}", not "${key.name}"`;
  }
  if (f.algorithm.toLowerCase().replace(/\.$/, "") !== key.algorithm) {
    return `the answer is signed with ${f.algorithm}, not ${key.algorithm}`;
  }
  const body = Buffer.from(raw.subarray(0, last.offset));
  body.writeUInt16BE(f.originalId, 0);
  body.writeUInt16BE(body.readUInt16BE(10) - 1, 10);
  const macLen = Buffer.alloc(2);
  macLen.writeUInt16BE(requestMac.length);
  const expected = hmac(key, macLen, requestMac, body, variables(key, f));
  if (f.mac.length !== expected.length || !timingSafeEqual(f.mac, expected)) {
    return "the answer's TSIG MAC does not verify (wrong key, or the answer was altered)";
  }
  if (Math.abs(nowSeconds - f.timeSigned) > f.fudge) {
    return `the answer was signed at ${f.timeSigned}, outside ${f.fudge} s of our clock`;
  }
  return undefined;
}
