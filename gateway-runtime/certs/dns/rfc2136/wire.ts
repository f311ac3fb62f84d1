/**
 * RFC 2136 messages on dns-packet. An UPDATE is a message with opcode 5 whose question section
 * is the zone (one SOA question), answer section the prerequisites (none here) and authority
 * section the updates (§2); dns-packet takes the opcode in its flags and encodes TXT and CAA.
 * What it cannot express is done here: class NONE, TXT values over 255 octets, and the checks on
 * names and CAA fields it leaves to its callers. No I/O.
 */
import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";
import { checkName, WireError } from "../../../dns/packet.js";
import type { CaaRecord } from "../provider.js";

export const OPCODE_UPDATE = 5;
const CLASS_NONE = 254;
const TYPE_CODE = { TXT: 16, CAA: 257 } as const;

/** One update (RFC 2136 §2.5): IN adds the record, NONE deletes exactly it, ANY its whole set. */
export type UpdateRr =
  | { readonly name: string; readonly class: "IN" | "NONE"; readonly txt: string }
  | { readonly name: string; readonly class: "IN" | "NONE"; readonly caa: CaaRecord }
  | { readonly name: string; readonly class: "ANY"; readonly type: "TXT" | "CAA" };

/**
 * TXT data: the UTF-8 bytes of `value` cut into character-strings of at most 255 octets.
 * dns-packet writes each string's length in one octet, so a longer one must be cut here.
 */
export function txtStrings(value: string): Buffer[] {
  const bytes = Buffer.from(value, "utf8");
  const strings: Buffer[] = [];
  for (let i = 0; i === 0 || i < bytes.length; i += 255) strings.push(bytes.subarray(i, i + 255));
  return strings;
}

/** CAA fields as RFC 8659 §4.1 allows them (dns-packet writes whatever it is given). */
export function checkCaa(record: CaaRecord): CaaRecord {
  if (!Number.isInteger(record.flags) || record.flags < 0 || record.flags > 255) {
    throw new WireError(`CAA flags must be 0-255, got ${record.flags}`);
  }
  if (!/^[A-Za-z0-9]{1,15}$/.test(record.tag)) {
    throw new WireError(`CAA tag must be 1-15 letters or digits, got "${record.tag}"`);
  }
  return { flags: record.flags, tag: record.tag, value: record.value };
}

function toAnswer(rr: UpdateRr, ttl: number): dnsPacket.Answer {
  checkName(rr.name);
  // Deletes carry TTL 0 (§2.5.2-2.5.4).
  const recordTtl = rr.class === "IN" ? ttl : 0;
  if ("txt" in rr) return { type: "TXT", name: rr.name, ttl: recordTtl, data: txtStrings(rr.txt) };
  if ("caa" in rr) {
    // The types list only the tags RFC 8659 defines; the codec writes any tag.
    const data = checkCaa(rr.caa) as dnsPacket.CaaData;
    return { type: "CAA", name: rr.name, ttl: recordTtl, data };
  }
  // A set delete has no data, which dns-packet's TXT and CAA codecs cannot write; for a type
  // named `UNKNOWN_<code>` it uses its raw codec (its types do not list such names).
  const raw = { type: `UNKNOWN_${TYPE_CODE[rr.type]}`, name: rr.name, class: "ANY", ttl: 0 };
  return { ...raw, data: Buffer.alloc(0) } as unknown as dnsPacket.Answer;
}

/** An UPDATE of `zone` applying `updates` in order; records added get `ttl`. */
export function encodeUpdate(
  id: number,
  zone: string,
  updates: readonly UpdateRr[],
  ttl: number,
): Buffer {
  checkName(zone);
  const packet: dnsPacket.Packet = {
    type: "query",
    id,
    flags: OPCODE_UPDATE << 11,
    questions: [{ name: zone, type: "SOA", class: "IN" }],
    authorities: updates.map((rr) => toAnswer(rr, ttl)),
  };
  const message = dnsPacket.encode(packet);
  // dns-packet knows no class NONE (it would write 0), so those records go out as IN and get
  // their class here. It never compresses names, so a record starts where the message without
  // it and the records after it would end.
  updates.forEach((rr, i) => {
    if (rr.class !== "NONE") return;
    const before = dnsPacket.encodingLength({
      ...packet,
      authorities: packet.authorities?.slice(0, i) ?? [],
    });
    message.writeUInt16BE(CLASS_NONE, before + dnsPacket.name.encode(rr.name).length + 2);
  });
  return message;
}

/** A plain query (no recursion wanted: it goes to the zone's primary). */
export function encodeQuery(id: number, name: string, type: "CAA"): Buffer {
  checkName(name);
  return dnsPacket.encode({ type: "query", id, questions: [{ name, type, class: "IN" }] });
}
