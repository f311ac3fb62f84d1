/**
 * The DNS wire format, through dns-packet: typings for what it does at runtime but its type
 * definitions leave out, and the checks it leaves to callers. Used by the RFC 2136 provider and
 * the custom-domain TXT client.
 */
import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";

declare module "dns-packet" {
  interface DecodedPacket {
    /** Name of the header opcode, e.g. `UPDATE`. */
    opcode: string;
    /** Name of the header rcode, e.g. `NXDOMAIN`. */
    rcode: string;
  }
  /** Uncompressed wire form of a name; `decode` follows compression pointers. */
  export const name: {
    encode(name: string): Buffer;
    decode: ((buf: Buffer, offset?: number) => string) & { bytes: number };
  };
  /** One resource record on its own. */
  export const answer: {
    encode(record: Answer): Buffer;
    decode: ((buf: Buffer, offset?: number) => Answer) & { bytes: number };
  };
}

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}

/**
 * Refuses what dns-packet would write silently wrong: it puts any label in, so one over 63
 * octets would corrupt the message and a space would ask for another name.
 */
export function checkName(name: string): void {
  const text = name.replace(/\.$/, "");
  if (text === "") return;
  let octets = 1;
  for (const label of text.split(".")) {
    const length = Buffer.byteLength(label, "latin1");
    if (length < 1 || length > 63 || !/^[\x21-\x7e]+$/.test(label)) {
      throw new WireError(`invalid DNS label "${label}" in "${name}"`);
    }
    octets += 1 + length;
  }
  if (octets > 255) throw new WireError(`DNS name longer than 255 octets: "${name}"`);
}

/**
 * Decodes a message; anything dns-packet cannot read becomes a WireError. dns-packet reads
 * record data by its stated length without checking it against the end of the message, so a
 * message cut inside a record is caught here by where the decoding ended.
 */
export function decodeMessage(raw: Buffer): dnsPacket.DecodedPacket {
  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(raw);
  } catch (e) {
    throw new WireError(e instanceof Error ? e.message : String(e));
  }
  if (dnsPacket.decode.bytes > raw.length) {
    throw new WireError(`a record runs past the end of the ${raw.length}-octet message`);
  }
  return packet;
}

/** The numeric header rcode (dns-packet keeps it in the low bits of `flags`). */
export const rcodeOf = (p: dnsPacket.DecodedPacket): number => (p.flags ?? 0) & 0xf;

export const RCODE = { NOERROR: 0, NXDOMAIN: 3 } as const;
