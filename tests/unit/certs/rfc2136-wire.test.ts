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
  caaRdata,
  encodeMessage,
  encodeName,
  OPCODE,
  parseCaaRdata,
  parseMessage,
  parseTxtRdata,
  RR_CLASS,
  RR_TYPE,
  readName,
  txtRdata,
  WireError,
} from "../../../gateway-runtime/certs/dns/rfc2136/wire.js";

describe("names", () => {
  it.each([
    ["app.test.example", "036170700474657374076578616d706c6500"],
    ["app.test.example.", "036170700474657374076578616d706c6500"],
    ["_acme-challenge.A", "0f5f61636d652d6368616c6c656e6765014100"],
    [".", "00"],
  ])("encodes %s", (name, hex) => {
    expect(encodeName(name).toString("hex")).toBe(hex);
  });

  it("lower-cases in canonical form only", () => {
    expect(encodeName("Key.Example", true)).toEqual(encodeName("key.example"));
    expect(encodeName("Key.Example")).not.toEqual(encodeName("key.example"));
  });

  it.each([
    ["an empty label", "a..b"],
    ["a label over 63 octets", `${"a".repeat(64)}.example`],
    ["a name over 255 octets", Array.from({ length: 5 }, () => "a".repeat(60)).join(".")],
    ["a space", "a b.example"],
  ])("rejects %s", (_what, name) => {
    expect(() => encodeName(name)).toThrow(WireError);
  });

  it("follows compression pointers and refuses loops", () => {
    const msg = Buffer.concat([
      encodeName("test.example"),
      Buffer.from([3, 0x61, 0x62, 0x63, 0xc0, 0]),
    ]);
    expect(readName(msg, 14)).toEqual({ name: "abc.test.example.", next: 20 });
    expect(() => readName(Buffer.from([0xc0, 0]), 0)).toThrow(/loop/);
  });
});

describe("record data", () => {
  it("splits TXT values into 255-octet strings and joins them back (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 800 }), (value) => {
        const rdata = txtRdata(value);
        expect(parseTxtRdata(rdata)).toBe(value);
        expect(rdata.length).toBe(
          Buffer.byteLength(value) + Math.max(1, Math.ceil(Buffer.byteLength(value) / 255)),
        );
      }),
    );
  });

  it("encodes CAA as RFC 8659 §4.1 and reads it back", () => {
    const rec = {
      flags: 128,
      tag: "issue",
      value: "ca.example; accounturi=https://ca.example/a/1",
    };
    const rdata = caaRdata(rec);
    expect(rdata.subarray(0, 7)).toEqual(Buffer.from([128, 5, ...Buffer.from("issue")]));
    expect(parseCaaRdata(rdata)).toEqual(rec);
    const msg = encodeMessage({
      id: 1,
      opcode: OPCODE.QUERY,
      questions: [],
      answers: [{ name: "a.example", type: RR_TYPE.CAA, class: RR_CLASS.IN, ttl: 60, rdata }],
    });
    const [answer] = dnsPacket.decode(msg).answers ?? [];
    expect(answer).toMatchObject({
      type: "CAA",
      data: { flags: 128, tag: "issue", value: rec.value },
    });
  });

  it.each([
    ["a long tag", { flags: 0, tag: "issuewildcardxyz", value: "" }],
    ["a tag with a dash", { flags: 0, tag: "is-sue", value: "" }],
    ["flags over 255", { flags: 256, tag: "issue", value: "" }],
  ])("rejects CAA with %s", (_what, rec) => {
    expect(() => caaRdata(rec)).toThrow(WireError);
  });
});

describe("UPDATE messages", () => {
  it("builds zone, update sections and classes as RFC 2136 §2 (read back with dns-packet)", () => {
    const msg = encodeMessage({
      id: 0x1234,
      opcode: OPCODE.UPDATE,
      questions: [{ name: "app.test.example", type: RR_TYPE.SOA, class: RR_CLASS.IN }],
      authority: [
        {
          name: "_acme-challenge.app.test.example",
          type: RR_TYPE.TXT,
          class: RR_CLASS.IN,
          ttl: 60,
          rdata: txtRdata("v1"),
        },
        {
          name: "_acme-challenge.app.test.example",
          type: RR_TYPE.TXT,
          class: RR_CLASS.NONE,
          ttl: 0,
          rdata: txtRdata("v0"),
        },
      ],
    });
    // @types/dns-packet lacks `opcode` and the class/ttl of records dns-packet does return.
    const decoded = dnsPacket.decode(msg) as dnsPacket.DecodedPacket & { opcode?: string };
    type Rec = { name: string; type: string; class: string; ttl: number };
    expect(decoded.id).toBe(0x1234);
    expect(decoded.opcode).toBe("UPDATE");
    expect(decoded.questions).toEqual([{ name: "app.test.example", type: "SOA", class: "IN" }]);
    const authorities = (decoded.authorities ?? []) as unknown as Rec[];
    expect(authorities.map((a) => [a.name, a.type, a.class, a.ttl])).toEqual([
      ["_acme-challenge.app.test.example", "TXT", "IN", 60],
      ["_acme-challenge.app.test.example", "TXT", "UNKNOWN_254", 0], // class NONE
    ]);
    const parsed = parseMessage(msg);
    expect(parsed.opcode).toBe(OPCODE.UPDATE);
    expect(parsed.authority.map((r) => parseTxtRdata(r.rdata))).toEqual(["v1", "v0"]);
  });

  it("reads answers with compressed names (encoded by dns-packet)", () => {
    const msg = dnsPacket.encode({
      type: "response",
      id: 7,
      flags: dnsPacket.AUTHORITATIVE_ANSWER,
      questions: [{ type: "CAA", name: "app.test.example" }],
      answers: [
        {
          type: "CAA",
          name: "app.test.example",
          ttl: 60,
          data: { flags: 0, tag: "issue", value: "ca.example" },
        },
      ],
    });
    const parsed = parseMessage(msg);
    expect(parsed.qr).toBe(true);
    expect(parsed.answers[0]?.name).toBe("app.test.example.");
    expect(parseCaaRdata(parsed.answers[0]?.rdata ?? Buffer.alloc(0))).toEqual({
      flags: 0,
      tag: "issue",
      value: "ca.example",
    });
  });

  it("refuses truncated messages", () => {
    const msg = dnsPacket.encode({
      type: "response",
      id: 7,
      answers: [{ type: "TXT", name: "a.example", data: "x" }],
    });
    for (const cut of [0, 5, 12, msg.length - 1])
      expect(() => parseMessage(msg.subarray(0, cut))).toThrow(WireError);
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
    encodeName(key.name, true),
    u16(255),
    Buffer.alloc(4),
    encodeName(key.algorithm, true),
    time48,
    u16(300),
    u16(error),
    u16(0),
  ]);
  const mac = createHmac(key.algorithm.replace("hmac-", ""), key.secret)
    .update(Buffer.concat([u16(requestMac.length), requestMac, answer, vars]))
    .digest();
  const rdata = Buffer.concat([
    encodeName(key.algorithm),
    time48,
    u16(300),
    u16(mac.length),
    mac,
    u16(answer.readUInt16BE(0)),
    u16(error),
    u16(0),
  ]);
  const rr = Buffer.concat([
    encodeName(key.name),
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
  const request = encodeMessage({
    id: 42,
    opcode: OPCODE.UPDATE,
    questions: [{ name: "app.test.example", type: RR_TYPE.SOA, class: RR_CLASS.IN }],
  });
  const answer = Buffer.from(request);
  answer.writeUInt16BE(0xa800, 2); // QR, UPDATE, NOERROR

  it.each(keys)("signs requests and checks answers with $algorithm", (key) => {
    const now = 1_700_000_000;
    const { message, mac } = signMessage(request, key, now);
    expect(mac.length).toBe(key.algorithm === "hmac-sha256" ? 32 : 64);
    expect(message.readUInt16BE(10)).toBe(1);
    const tsig = parseMessage(message).additional[0];
    expect(tsig?.type).toBe(RR_TYPE.TSIG);
    expect(tsig?.class).toBe(RR_CLASS.ANY);

    const signed = serverSign(answer, key, mac, now + 1);
    expect(verifyResponse(signed, parseMessage(signed), key, mac, now + 2)).toBeUndefined();
  });

  it("rejects answers that were altered, unsigned, signed for another request, too old, or flagged", () => {
    const key = keys[0] as TsigKey;
    const now = 1_700_000_000;
    const { mac } = signMessage(request, key, now);
    const good = serverSign(answer, key, mac, now);
    const check = (msg: Buffer, at = now, reqMac = mac) =>
      verifyResponse(msg, parseMessage(msg), key, reqMac, at);

    const altered = Buffer.from(good);
    altered[3] = 0x05; // rcode REFUSED instead of NOERROR
    expect(check(altered)).toMatch(/does not verify/);
    expect(check(answer)).toBe("the answer is not signed");
    expect(check(good, now, Buffer.alloc(32, 1))).toMatch(/does not verify/);
    expect(check(good, now + 301)).toMatch(/outside 300 s/);
    const otherKey = { ...key, secret: Buffer.alloc(32, 8) };
    expect(verifyResponse(good, parseMessage(good), otherKey, mac, now)).toMatch(/does not verify/);
    const badsig = serverSign(answer, key, mac, now, 16);
    expect(check(badsig)).toBe("the server rejected our TSIG: BADSIG");
  });
});
