import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import dnsPacket from "dns-packet";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  signMessage,
  type TsigKey,
  verifyResponse,
} from "../../../gateway-runtime/certs/dns/rfc2136/tsig.js";
import {
  checkCaa,
  encodeQuery,
  encodeUpdate,
  txtStrings,
} from "../../../gateway-runtime/certs/dns/rfc2136/wire.js";
import { checkName, decodeMessage, WireError } from "../../../gateway-runtime/dns/packet.js";

const ZONE = "app.test.example";
const NAME = `_acme-challenge.${ZONE}`;
type Rec = { name: string; type: string; class: string; ttl: number; data: unknown };

describe("names", () => {
  it.each([
    "app.test.example",
    "app.test.example.",
    "_acme-challenge.A",
    ".",
    `${"a".repeat(63)}.example`,
  ])("accepts %s", (name) => {
    expect(() => checkName(name)).not.toThrow();
  });

  it.each([
    ["an empty label", "a..b"],
    ["a label over 63 octets", `${"a".repeat(64)}.example`],
    ["a name over 255 octets", Array.from({ length: 5 }, () => "a".repeat(60)).join(".")],
    ["a space", "a b.example"],
  ])("rejects %s, before anything is encoded", (_what, name) => {
    expect(() => checkName(name)).toThrow(WireError);
    expect(() => encodeUpdate(1, ZONE, [{ name, class: "IN", txt: "v" }], 60)).toThrow(WireError);
    expect(() => encodeUpdate(1, name, [], 60)).toThrow(WireError);
    expect(() => encodeQuery(1, name, "CAA")).toThrow(WireError);
  });
});

describe("record data", () => {
  it("cuts TXT values into strings of at most 255 octets that join back (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 800 }), (value) => {
        const strings = txtStrings(value);
        expect(Buffer.concat(strings).toString("utf8")).toBe(value);
        expect(strings.every((s) => s.length <= 255)).toBe(true);
        expect(strings.length).toBe(Math.max(1, Math.ceil(Buffer.byteLength(value) / 255)));
      }),
    );
  });

  it("writes a 600-octet TXT value as three strings (read back with dns-packet)", () => {
    const value = "x".repeat(600);
    const msg = encodeUpdate(1, ZONE, [{ name: NAME, class: "IN", txt: value }], 60);
    const [rr] = (dnsPacket.decode(msg).authorities ?? []) as unknown as Rec[];
    const strings = rr?.data as Buffer[];
    expect(strings.map((s) => s.length)).toEqual([255, 255, 90]);
    expect(Buffer.concat(strings).toString()).toBe(value);
  });

  it.each([
    ["a long tag", { flags: 0, tag: "issuewildcardxyz", value: "" }],
    ["a tag with a dash", { flags: 0, tag: "is-sue", value: "" }],
    ["flags over 255", { flags: 256, tag: "issue", value: "" }],
  ])("rejects CAA with %s", (_what, rec) => {
    expect(() => checkCaa(rec)).toThrow(WireError);
  });
});

describe("UPDATE messages", () => {
  it("puts the zone, the opcode and adds and deletes as RFC 2136 §2 (read back with dns-packet)", () => {
    const caa = {
      flags: 128,
      tag: "issue",
      value: "ca.example; accounturi=https://ca.example/a/1",
    };
    const msg = encodeUpdate(
      0x1234,
      ZONE,
      [
        { name: NAME, class: "IN", txt: "v1" },
        { name: NAME, class: "NONE", txt: "v0" },
        { name: ZONE, class: "IN", caa },
        { name: ZONE, class: "NONE", caa },
      ],
      60,
    );
    const decoded = dnsPacket.decode(msg);
    expect(decoded.id).toBe(0x1234);
    expect(decoded.type).toBe("query");
    expect(decoded.opcode).toBe("UPDATE");
    expect(decoded.questions).toEqual([{ name: ZONE, type: "SOA", class: "IN" }]);
    expect(decoded.answers).toEqual([]);
    const authorities = (decoded.authorities ?? []) as unknown as Rec[];
    expect(authorities.map((a) => [a.name, a.type, a.class, a.ttl])).toEqual([
      [NAME, "TXT", "IN", 60],
      [NAME, "TXT", "UNKNOWN_254", 0], // class NONE, TTL 0 (§2.5.4)
      [ZONE, "CAA", "IN", 60],
      [ZONE, "CAA", "UNKNOWN_254", 0],
    ]);
    expect(authorities.map((a) => a.data)).toEqual([
      [Buffer.from("v1")],
      [Buffer.from("v0")],
      { ...caa, issuerCritical: true },
      { ...caa, issuerCritical: true },
    ]);
  });

  it("deletes a whole set with class ANY, TTL 0 and no data (§2.5.2)", () => {
    const msg = encodeUpdate(
      7,
      ZONE,
      [
        { name: ZONE, class: "ANY", type: "CAA" },
        { name: ZONE, class: "IN", caa: { flags: 0, tag: "issue", value: "ca.example" } },
      ],
      60,
    );
    const question = 12 + dnsPacket.name.encode(ZONE).length + 4;
    const owner = dnsPacket.name.encode(ZONE);
    // type CAA (257), class ANY (255), TTL 0, RDLENGTH 0
    const fixed = Buffer.from([0x01, 0x01, 0x00, 0xff, 0, 0, 0, 0, 0, 0]);
    expect(msg.subarray(question, question + owner.length + 10)).toEqual(
      Buffer.concat([owner, fixed]),
    );
    expect(msg.readUInt16BE(8)).toBe(2); // two updates
    const added = dnsPacket.answer.decode(msg, question + owner.length + 10);
    expect(added).toMatchObject({ type: "CAA", class: "IN", ttl: 60, data: { tag: "issue" } });
  });

  it("asks CAA questions without recursion", () => {
    const decoded = dnsPacket.decode(encodeQuery(9, ZONE, "CAA"));
    expect(decoded).toMatchObject({ id: 9, type: "query", opcode: "QUERY", flags: 0 });
    expect(decoded.questions).toEqual([{ name: ZONE, type: "CAA", class: "IN" }]);
  });

  it("refuses truncated messages with a WireError", () => {
    const msg = dnsPacket.encode({
      type: "response",
      id: 7,
      answers: [{ type: "TXT", name: "a.example", data: "x" }],
    });
    for (const cut of [0, 5, 12, msg.length - 1])
      expect(() => decodeMessage(msg.subarray(0, cut))).toThrow(WireError);
  });
});

/** Signs an answer the way a server does (RFC 8945 §5.3), independently of tsig.ts. */
function serverSign(
  answer: Buffer,
  key: TsigKey,
  requestMac: Buffer,
  time: number,
  error = 0,
): Buffer {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const time48 = Buffer.alloc(6);
  time48.writeUIntBE(time, 0, 6);
  const vars = Buffer.concat([
    dnsPacket.name.encode(key.name.toLowerCase()),
    u16(255),
    Buffer.alloc(4),
    dnsPacket.name.encode(key.algorithm),
    time48,
    u16(300),
    u16(error),
    u16(0),
  ]);
  const mac = createHmac(key.algorithm.replace("hmac-", ""), key.secret)
    .update(Buffer.concat([u16(requestMac.length), requestMac, answer, vars]))
    .digest();
  const rdata = Buffer.concat([
    dnsPacket.name.encode(key.algorithm),
    time48,
    u16(300),
    u16(mac.length),
    mac,
    u16(answer.readUInt16BE(0)),
    u16(error),
    u16(0),
  ]);
  const rr = Buffer.concat([
    dnsPacket.name.encode(key.name),
    u16(250),
    u16(255),
    Buffer.alloc(4),
    u16(rdata.length),
    rdata,
  ]);
  const out = Buffer.concat([answer, rr]);
  out.writeUInt16BE(answer.readUInt16BE(10) + 1, 10);
  return out;
}

describe("TSIG", () => {
  const keys: TsigKey[] = [
    { name: "gateway-key", algorithm: "hmac-sha256", secret: Buffer.alloc(32, 7) },
    { name: "Gateway-Key.", algorithm: "hmac-sha512", secret: Buffer.alloc(64, 9) },
  ];
  const request = encodeUpdate(42, ZONE, [], 60);
  const answer = Buffer.from(request);
  answer.writeUInt16BE(0xa800, 2); // QR, UPDATE, NOERROR

  it.each(keys)("signs requests and checks answers with $algorithm", (key) => {
    const now = 1_700_000_000;
    const { message, mac } = signMessage(request, key, now);
    expect(mac.length).toBe(key.algorithm === "hmac-sha256" ? 32 : 64);
    expect(message.readUInt16BE(10)).toBe(1);
    // the request as built, then the TSIG record; only ARCOUNT (octets 10-11) changes
    expect(message.subarray(0, 10)).toEqual(request.subarray(0, 10));
    expect(message.subarray(12, request.length)).toEqual(request.subarray(12));
    const [tsig] = (dnsPacket.decode(message).additionals ?? []) as unknown as Rec[];
    expect(tsig).toMatchObject({
      name: key.name.replace(/\.$/, ""),
      type: "TSIG",
      class: "ANY",
      ttl: 0,
    });

    const signed = serverSign(answer, key, mac, now + 1);
    expect(verifyResponse(signed, key, mac, now + 2)).toBeUndefined();
  });

  it("rejects answers that were altered, unsigned, signed for another request, too old, or flagged", () => {
    const key = keys[0] as TsigKey;
    const now = 1_700_000_000;
    const { mac } = signMessage(request, key, now);
    const good = serverSign(answer, key, mac, now);
    const check = (msg: Buffer, at = now, reqMac = mac) => verifyResponse(msg, key, reqMac, at);

    const altered = Buffer.from(good);
    altered[3] = 0x05; // rcode REFUSED instead of NOERROR
    expect(check(altered)).toMatch(/does not verify/);
    expect(check(answer)).toBe("the answer is not signed");
    expect(check(good, now, Buffer.alloc(32, 1))).toMatch(/does not verify/);
    expect(check(good, now + 301)).toMatch(/outside 300 s/);
    const otherKey = { ...key, secret: Buffer.alloc(32, 8) };
    expect(verifyResponse(good, otherKey, mac, now)).toMatch(/does not verify/);
    const badsig = serverSign(answer, key, mac, now, 16);
    expect(check(badsig)).toBe("the server rejected our TSIG: BADSIG");
    expect(check(serverSign(good, key, mac, now))).toBe(
      "the answer has a TSIG record that is not the last one",
    );
    expect(check(good.subarray(0, good.length - 3))).toMatch(/^unreadable TSIG record/);
  });
});
