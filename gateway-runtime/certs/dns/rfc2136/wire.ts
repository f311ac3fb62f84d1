/**
 * The few pieces of the DNS wire format (RFC 1035) that dynamic update needs: names, resource
 * records with TXT and CAA data, whole messages, and a reader for answers (with name
 * compression). No I/O; `client.ts` sends what this builds.
 */
import { Buffer } from "node:buffer";
import type { CaaRecord } from "../provider.js";

export const RR_TYPE = { SOA: 6, TXT: 16, TSIG: 250, CAA: 257 } as const;
export const RR_CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const OPCODE = { QUERY: 0, UPDATE: 5 } as const;

export const RCODE_NAMES: Readonly<Record<number, string>> = {
  0: "NOERROR",
  1: "FORMERR",
  2: "SERVFAIL",
  3: "NXDOMAIN",
  4: "NOTIMP",
  5: "REFUSED",
  6: "YXDOMAIN",
  7: "YXRRSET",
  8: "NXRRSET",
  9: "NOTAUTH",
  10: "NOTZONE",
};

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}

/** `name` in wire form, uncompressed; `canonical` lower-cases it (RFC 4034 §6.2, for TSIG). */
export function encodeName(name: string, canonical = false): Buffer {
  const text = (canonical ? name.toLowerCase() : name).replace(/\.$/, "");
  if (text === "") return Buffer.from([0]);
  const parts: Buffer[] = [];
  for (const label of text.split(".")) {
    const bytes = Buffer.from(label, "latin1");
    if (bytes.length < 1 || bytes.length > 63 || !/^[\x21-\x7e]+$/.test(label)) {
      throw new WireError(`invalid DNS label "${label}" in "${name}"`);
    }
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  const wire = Buffer.concat(parts);
  if (wire.length > 255) throw new WireError(`DNS name longer than 255 octets: "${name}"`);
  return wire;
}

/** TXT data: the UTF-8 bytes of `value` cut into character-strings of at most 255 octets. */
export function txtRdata(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  const parts: Buffer[] = [];
  for (let i = 0; i === 0 || i < bytes.length; i += 255) {
    const chunk = bytes.subarray(i, i + 255);
    parts.push(Buffer.from([chunk.length]), chunk);
  }
  return Buffer.concat(parts);
}

export function parseTxtRdata(rdata: Buffer): string {
  const chunks: Buffer[] = [];
  for (let i = 0; i < rdata.length; ) {
    const len = rdata[i] as number;
    if (i + 1 + len > rdata.length) throw new WireError("TXT data overruns its record");
    chunks.push(rdata.subarray(i + 1, i + 1 + len));
    i += 1 + len;
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** CAA data (RFC 8659 §4.1): flags, tag length, tag, value. */
export function caaRdata(record: CaaRecord): Buffer {
  if (!Number.isInteger(record.flags) || record.flags < 0 || record.flags > 255) {
    throw new WireError(`CAA flags must be 0-255, got ${record.flags}`);
  }
  if (!/^[A-Za-z0-9]{1,15}$/.test(record.tag)) {
    throw new WireError(`CAA tag must be 1-15 letters or digits, got "${record.tag}"`);
  }
  const tag = Buffer.from(record.tag, "ascii");
  return Buffer.concat([
    Buffer.from([record.flags, tag.length]),
    tag,
    Buffer.from(record.value, "utf8"),
  ]);
}

export function parseCaaRdata(rdata: Buffer): CaaRecord {
  const flags = rdata[0];
  const tagLen = rdata[1];
  if (flags === undefined || tagLen === undefined || rdata.length < 2 + tagLen) {
    throw new WireError("CAA data shorter than its tag");
  }
  return {
    flags,
    tag: rdata.subarray(2, 2 + tagLen).toString("ascii"),
    value: rdata.subarray(2 + tagLen).toString("utf8"),
  };
}

export interface Question {
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

export interface Rr {
  readonly name: string;
  readonly type: number;
  readonly class: number;
  readonly ttl: number;
  readonly rdata: Buffer;
}

export function encodeRr(rr: Rr, canonicalName = false): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(rr.type, 0);
  fixed.writeUInt16BE(rr.class, 2);
  fixed.writeUInt32BE(rr.ttl, 4);
  fixed.writeUInt16BE(rr.rdata.length, 8);
  return Buffer.concat([encodeName(rr.name, canonicalName), fixed, rr.rdata]);
}

export interface MessageSpec {
  readonly id: number;
  readonly opcode: number;
  /** Header flag bits besides QR and opcode, e.g. 0x0100 (RD). */
  readonly flags?: number;
  /** Questions; for UPDATE the zone section (one SOA question). */
  readonly questions: readonly Question[];
  /** Answers; for UPDATE the prerequisites. */
  readonly answers?: readonly Rr[];
  /** Authority; for UPDATE the updates. */
  readonly authority?: readonly Rr[];
  readonly additional?: readonly Rr[];
}

export function encodeMessage(spec: MessageSpec): Buffer {
  const answers = spec.answers ?? [];
  const authority = spec.authority ?? [];
  const additional = spec.additional ?? [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(spec.id, 0);
  header.writeUInt16BE(((spec.opcode & 0xf) << 11) | ((spec.flags ?? 0) & 0x87ff), 2);
  header.writeUInt16BE(spec.questions.length, 4);
  header.writeUInt16BE(answers.length, 6);
  header.writeUInt16BE(authority.length, 8);
  header.writeUInt16BE(additional.length, 10);
  const questions = spec.questions.map((q) => {
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(q.type, 0);
    tail.writeUInt16BE(q.class, 2);
    return Buffer.concat([encodeName(q.name), tail]);
  });
  const rrs = [...answers, ...authority, ...additional].map((rr) => encodeRr(rr));
  return Buffer.concat([header, ...questions, ...rrs]);
}

export interface ParsedRr extends Rr {
  /** Offset of the record's first octet in the message. */
  readonly offset: number;
  /** Offset of the record's data in the message (for names inside the data). */
  readonly rdataOffset: number;
}

export interface ParsedMessage {
  readonly id: number;
  readonly qr: boolean;
  readonly opcode: number;
  readonly rcode: number;
  readonly questions: Question[];
  readonly answers: ParsedRr[];
  readonly authority: ParsedRr[];
  readonly additional: ParsedRr[];
}

/** Reads a possibly compressed name at `offset`; `next` is the offset after it in place. */
export function readName(msg: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  for (let hops = 0; ; hops++) {
    if (hops > 127) throw new WireError("DNS name compression loop");
    const len = msg[pos];
    if (len === undefined) throw new WireError("DNS name runs past the message");
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      const low = msg[pos + 1];
      if (low === undefined) throw new WireError("truncated compression pointer");
      if (next < 0) next = pos + 2;
      pos = ((len & 0x3f) << 8) | low;
      continue;
    }
    if (len > 63) throw new WireError(`bad DNS label length ${len}`);
    if (pos + 1 + len > msg.length) throw new WireError("DNS label runs past the message");
    labels.push(msg.subarray(pos + 1, pos + 1 + len).toString("latin1"));
    pos += 1 + len;
  }
  return { name: labels.length === 0 ? "." : `${labels.join(".")}.`, next };
}

function readRr(msg: Buffer, offset: number): { rr: ParsedRr; next: number } {
  const { name, next } = readName(msg, offset);
  if (next + 10 > msg.length) throw new WireError("resource record header runs past the message");
  const rdlength = msg.readUInt16BE(next + 8);
  const rdataOffset = next + 10;
  if (rdataOffset + rdlength > msg.length) throw new WireError("record data runs past the message");
  const rr: ParsedRr = {
    name,
    type: msg.readUInt16BE(next),
    class: msg.readUInt16BE(next + 2),
    ttl: msg.readUInt32BE(next + 4),
    rdata: msg.subarray(rdataOffset, rdataOffset + rdlength),
    offset,
    rdataOffset,
  };
  return { rr, next: rdataOffset + rdlength };
}

export function parseMessage(msg: Buffer): ParsedMessage {
  if (msg.length < 12) throw new WireError(`DNS message of ${msg.length} octets is too short`);
  const flags = msg.readUInt16BE(2);
  const counts = [4, 6, 8, 10].map((o) => msg.readUInt16BE(o));
  let pos = 12;
  const questions: Question[] = [];
  for (let i = 0; i < (counts[0] as number); i++) {
    const { name, next } = readName(msg, pos);
    if (next + 4 > msg.length) throw new WireError("question runs past the message");
    questions.push({ name, type: msg.readUInt16BE(next), class: msg.readUInt16BE(next + 2) });
    pos = next + 4;
  }
  const sections: ParsedRr[][] = [[], [], []];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < (counts[s + 1] as number); i++) {
      const { rr, next } = readRr(msg, pos);
      sections[s]?.push(rr);
      pos = next;
    }
  }
  return {
    id: msg.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    rcode: flags & 0xf,
    questions,
    answers: sections[0] ?? [],
    authority: sections[1] ?? [],
    additional: sections[2] ?? [],
  };
}
