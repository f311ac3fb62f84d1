import { Buffer } from "node:buffer";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import {
  CLIENT_HELLO_ERROR_CODES,
  MAX_HELLO_RECORD_BYTES,
  parseClientHello,
} from "../../../gateway-runtime/proxy/clienthello.js";
import {
  alpnExt,
  codeOf,
  cuts,
  type Ext,
  ext,
  hello,
  helloArb,
  message,
  NEED_MORE,
  outcome,
  records,
  type Spec,
  sizesArb,
  sni,
} from "./clienthello-encode.js";

describe("parseClientHello properties", () => {
  it("gives a result or a ClientHelloError for any bytes", () => {
    const tlsish = fc
      .tuple(fc.constantFrom([0x16], [0x16, 3, 1], [0x16, 3, 3, 0, 0x40, 1, 0]), fc.uint8Array())
      .map(([head, tail]) => Uint8Array.from([...head, ...tail]));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 600 }), tlsish), (bytes) => {
        outcome(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it("reads back the SNI and ALPN across random records and TCP chunks", () => {
    const chunksArb = fc.array(
      fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 4096 })),
      { maxLength: 24 },
    );
    const minorArb = fc.constantFrom(1, 3);
    fc.assert(
      fc.property(helloArb, sizesArb, minorArb, chunksArb, (h, sizes, minor, chunks) => {
        const stream = records(h.msg.out, sizes, minor);
        for (const at of cuts(chunks, stream.length)) {
          expect(parseClientHello(stream.subarray(0, at))).toEqual(NEED_MORE);
        }
        const expected = { serverName: h.serverName, alpn: h.alpn, recordBytes: stream.length };
        expect(parseClientHello(stream)).toEqual({ status: "done", hello: expected });
        // Bytes after the ClientHello (early data, a pipelined request) are not its records.
        const more = Buffer.concat([stream, Buffer.from([0x17, 3, 3, 0, 1, 0])]);
        expect(parseClientHello(more)).toEqual({ status: "done", hello: expected });
      }),
      { numRuns: 150 },
    );
  });

  it("answers need-more for every strict prefix, read through a view of the full input", () => {
    fc.assert(
      fc.property(helloArb, sizesArb, fc.nat(), (h, sizes, cut) => {
        const stream = records(h.msg.out, sizes);
        // A view shares memory with the whole hello: reading past its end would find a result.
        expect(parseClientHello(stream.subarray(0, cut % stream.length))).toEqual(NEED_MORE);
      }),
      { numRuns: 300 },
    );
  });

  it("gives a result or a ClientHelloError when a length field is changed", () => {
    fc.assert(
      fc.property(
        helloArb,
        sizesArb,
        fc.nat(),
        fc.nat(0xffffff),
        fc.boolean(),
        (h, sizes, pick, value, inRecord) => {
          let stream: Buffer;
          if (inRecord) {
            stream = records(h.msg.out, sizes);
            const headers: number[] = [];
            for (let pos = 0; pos < stream.length; pos += 5 + stream.readUInt16BE(pos + 3))
              headers.push(pos);
            stream.writeUInt16BE(value & 0xffff, (headers[pick % headers.length] ?? 0) + 3);
          } else {
            const field = h.msg.lengths[pick % h.msg.lengths.length] ?? { at: 1, size: 3 };
            const msg = [...h.msg.out];
            for (let i = 0; i < field.size; i++) {
              msg[field.at + i] = (value >> (8 * (field.size - 1 - i))) & 0xff;
            }
            stream = records(msg, sizes);
          }
          outcome(stream);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("gives a result or a ClientHelloError when random bytes are overwritten", () => {
    const editsArb = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
      minLength: 1,
      maxLength: 4,
    });
    fc.assert(
      fc.property(helloArb, sizesArb, editsArb, (h, sizes, edits) => {
        const stream = records(h.msg.out, sizes);
        for (const [at, v] of edits) stream[at % stream.length] = v;
        outcome(stream);
      }),
      { numRuns: 500 },
    );
  });
});

// ---- one minimal input per reason ----

const ascii = (s: string): Buffer => Buffer.from(s, "latin1");
const twoHosts = sni("a.example", "b.example");
const cases: ReadonlyArray<readonly [string, Uint8Array, string]> = [
  ["empty input", Buffer.alloc(0), "need-more"],
  ["HTTP request", ascii("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "E_HELLO_HTTP"],
  ["HTTP/2 prior knowledge preface", ascii("PRI * HTTP/2.0\r\n"), "E_HELLO_HTTP"],
  ["start of an HTTP verb", ascii("CONNE"), "need-more"],
  ["not quite a verb", ascii("GEX / HTTP/1.1"), "E_HELLO_NOT_TLS"],
  ["SSH banner", ascii("SSH-2.0-OpenSSH_9.2\r\n"), "E_HELLO_NOT_TLS"],
  ["SSLv2 ClientHello", Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15]), "E_HELLO_SSLV2"],
  ["SSLv2 header, two bytes", Buffer.from([0x80, 0x2e]), "need-more"],
  ["high bit, not a CLIENT-HELLO", Buffer.from([0x80, 0x2e, 0x04]), "E_HELLO_NOT_TLS"],
  ["alert record first", Buffer.from([0x15, 3, 3, 0, 2, 2, 40]), "E_HELLO_NOT_TLS"],
  ["application data first", Buffer.from([0x17, 3, 3, 0, 1, 0]), "E_HELLO_NOT_TLS"],
  ["record version 2.0", Buffer.from([0x16, 2]), "E_HELLO_BAD_RECORD"],
  ["record version 3.5", Buffer.from([0x16, 3, 5]), "E_HELLO_BAD_RECORD"],
  ["zero-length record", Buffer.from([0x16, 3, 1, 0, 0]), "E_HELLO_BAD_RECORD"],
  ["record over 16384", Buffer.from([0x16, 3, 1, 0x40, 0x01]), "E_HELLO_BAD_RECORD"],
  ["alert in the middle", alertInside(), "E_HELLO_BAD_RECORD"],
  ["ChangeCipherSpec in the middle", alertInside(0x14), "E_HELLO_BAD_RECORD"],
  ["record runs past the hello", records([...message().out, 1, 0], [1000]), "E_HELLO_BAD_RECORD"],
  ["record one byte past the hello", records([...message().out, 0], [1000]), "E_HELLO_BAD_RECORD"],
  [
    "declared record past the hello",
    records([...message().out, 0], [1000]).subarray(0, 9),
    "E_HELLO_BAD_RECORD",
  ],
  ["ServerHello", Buffer.from([0x16, 3, 3, 0, 4, 2]), "E_HELLO_NOT_CLIENT_HELLO"],
  ["ServerHello, complete", hello({ type: 2 }), "E_HELLO_NOT_CLIENT_HELLO"],
  ["handshake body 16385", Buffer.from([0x16, 3, 1, 0, 4, 1, 0, 0x40, 0x01]), "E_HELLO_TOO_LARGE"],
  [
    "handshake body 2^24-1",
    Buffer.from([0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]),
    "E_HELLO_TOO_LARGE",
  ],
  ["too many tiny records", tinyRecords(), "E_HELLO_TOO_LARGE"],
  ["empty ClientHello body", Buffer.from([0x16, 3, 1, 0, 4, 1, 0, 0, 0]), "E_HELLO_MALFORMED"],
  ["truncated body", Buffer.from([0x16, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3]), "E_HELLO_MALFORMED"],
  ["ClientHello version 2.0", hello({ version: [2, 0] }), "E_HELLO_MALFORMED"],
  ["session id of 33", hello({ sessionId: new Uint8Array(33) }), "E_HELLO_MALFORMED"],
  ["odd cipher_suites", hello({ suites: [0x13, 0x01, 0xc0] }), "E_HELLO_MALFORMED"],
  ["no cipher_suites", hello({ suites: [] }), "E_HELLO_MALFORMED"],
  ["no compression", hello({ compression: [] }), "E_HELLO_MALFORMED"],
  ["bytes after extensions", hello({ trailing: [0] }), "E_HELLO_MALFORMED"],
  ["one byte where extensions go", hello({ extensions: null, trailing: [0] }), "E_HELLO_MALFORMED"],
  // default hello ends: ext type(2) ext length(2) list length(2) type(1) length(2) "example.com"
  ["extension runs past the block", withLength(hello(), -18, 0xff), "E_HELLO_MALFORMED"],
  ["extension block runs past body", withLength(hello(), -22, 0x1ff), "E_HELLO_MALFORMED"],
  [
    "duplicate extension",
    hello({ extensions: [sni("a.b"), ext(23, []), ext(23, [])] }),
    "E_HELLO_MALFORMED",
  ],
  ["duplicate server_name", hello({ extensions: [sni("a.b"), sni("a.b")] }), "E_HELLO_MALFORMED"],
  // duplicates are tracked in three ranges: below 32, 32-63, and above
  [
    "duplicate type 31",
    hello({ extensions: [ext(31, []), sni("a.b"), ext(31, [])] }),
    "E_HELLO_MALFORMED",
  ],
  [
    "duplicate type 43",
    hello({ extensions: [ext(43, []), sni("a.b"), ext(43, [])] }),
    "E_HELLO_MALFORMED",
  ],
  [
    "duplicate type 65281",
    hello({ extensions: [ext(65281, [0]), sni("a.b"), ext(65281, [0])] }),
    "E_HELLO_MALFORMED",
  ],
  ["empty server_name ext", hello({ extensions: [ext(0, [])] }), "E_HELLO_MALFORMED"],
  ["empty server_name_list", hello({ extensions: [ext(0, [0, 0])] }), "E_HELLO_MALFORMED"],
  ["server_name_list too short", hello({ extensions: [ext(0, [0, 1, 0])] }), "E_HELLO_MALFORMED"],
  ["bytes after server_name_list", hello({ extensions: [ext(0, [0, 0, 9])] }), "E_HELLO_MALFORMED"],
  [
    "host_name runs past list",
    hello({ extensions: [ext(0, [0, 4, 0, 0, 9, 97])] }),
    "E_HELLO_MALFORMED",
  ],
  ["two host_names", hello({ extensions: [twoHosts] }), "E_HELLO_MALFORMED"],
  ["empty ALPN ext", hello({ extensions: [sni("a.b"), ext(16, [])] }), "E_HELLO_MALFORMED"],
  ["empty ALPN list", hello({ extensions: [sni("a.b"), ext(16, [0, 0])] }), "E_HELLO_MALFORMED"],
  [
    "empty ALPN name",
    hello({ extensions: [sni("a.b"), alpnExt(["h2", ""])] }),
    "E_HELLO_MALFORMED",
  ],
  [
    "ALPN name past list",
    hello({ extensions: [sni("a.b"), ext(16, [0, 3, 5, 104, 50])] }),
    "E_HELLO_MALFORMED",
  ],
  [
    "bytes after ALPN list",
    hello({ extensions: [sni("a.b"), ext(16, [0, 3, 2, 104, 50, 0])] }),
    "E_HELLO_MALFORMED",
  ],
  ["no extensions", hello({ extensions: null }), "E_HELLO_NO_SNI"],
  ["empty extensions block", hello({ extensions: [] }), "E_HELLO_NO_SNI"],
  [
    "extensions without SNI",
    hello({ extensions: [alpnExt(["h2"]), ext(43, [2, 3, 4])] }),
    "E_HELLO_NO_SNI",
  ],
  [
    "server_name without host_name",
    hello({ extensions: [ext(0, [0, 4, 1, 0, 1, 97])] }),
    "E_HELLO_NO_SNI",
  ],
  ["host_name with a space", hello({ extensions: [sni("bad host.example")] }), "E_HELLO_BAD_SNI"],
  ["host_name with a slash", hello({ extensions: [sni("a/b.example")] }), "E_HELLO_BAD_SNI"],
  ["host_name in UTF-8", hello({ extensions: [sni(Buffer.from("bücher.de"))] }), "E_HELLO_BAD_SNI"],
  ["host_name with NUL", hello({ extensions: [sni("a.example\0.evil")] }), "E_HELLO_BAD_SNI"],
  ["empty host_name", hello({ extensions: [sni("")] }), "E_HELLO_BAD_SNI"],
  ["host_name '.'", hello({ extensions: [sni(".")] }), "E_HELLO_BAD_SNI"],
  ["empty label", hello({ extensions: [sni("a..b")] }), "E_HELLO_BAD_SNI"],
  ["leading dot", hello({ extensions: [sni(".a.b")] }), "E_HELLO_BAD_SNI"],
  ["two trailing dots", hello({ extensions: [sni("a.b..")] }), "E_HELLO_BAD_SNI"],
  ["label of 64", hello({ extensions: [sni(`${"a".repeat(64)}.b`)] }), "E_HELLO_BAD_SNI"],
  ["254 characters", hello({ extensions: [sni(name(254))] }), "E_HELLO_BAD_SNI"],
];

/** A name of `n` (193..255) characters made of labels of 63. */
function name(n: number): string {
  return new Array<string>(4).fill("a".repeat(63)).join(".").slice(0, n);
}

function alertInside(type = 0x15): Buffer {
  const stream = hello({}, [10]);
  stream[15] = type;
  return stream;
}

function tinyRecords(): Buffer {
  const big = message({ extensions: [sni("a.b"), ext(21, new Uint8Array(15000))] }).out;
  return records(big, new Array<number>(big.length).fill(1));
}

/** The whole input with the 2-byte big-endian field at `offset` (negative: from the end) set. */
function withLength(bytes: Buffer, offset: number, value: number): Buffer {
  const out = Buffer.from(bytes);
  out.writeUInt16BE(value, offset < 0 ? out.length + offset : offset);
  return out;
}

describe("parseClientHello reasons", () => {
  it.each(cases)("%s", (_, bytes, expected) => {
    expect(codeOf(bytes)).toBe(expected);
  });

  it("uses every code in the tables", () => {
    expect(new Set(cases.map(([, , c]) => c))).toEqual(
      new Set([...CLIENT_HELLO_ERROR_CODES, "need-more"]),
    );
  });

  it("throws a GatewayError subclass with a stable code and name", () => {
    let caught: unknown;
    try {
      parseClientHello(ascii("GET / HTTP/1.1\r\n"));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GatewayError);
    expect(caught).toMatchObject({ name: "ClientHelloError", code: "E_HELLO_HTTP" });
  });

  it("accepts a 16384-byte body in records of exactly MAX_HELLO_RECORD_BYTES, not one more", () => {
    const bare = message({ extensions: [sni("edge.example")] }).out.length - 4;
    const msg = message({
      extensions: [sni("edge.example"), ext(21, new Uint8Array(16384 - bare - 4))],
    });
    expect(msg.out.length).toBe(4 + 16384);
    const fit = records(msg.out, [
      ...new Array<number>(8).fill(6),
      ...new Array<number>(3268).fill(5),
    ]);
    expect(fit.length).toBe(MAX_HELLO_RECORD_BYTES);
    expect(parseClientHello(fit)).toMatchObject({
      status: "done",
      hello: { recordBytes: fit.length },
    });
    const over = records(msg.out, [6, 6, 6, ...new Array<number>(3274).fill(5)]);
    expect(over.length).toBe(MAX_HELLO_RECORD_BYTES + 5);
    expect(codeOf(over)).toBe("E_HELLO_TOO_LARGE");
  });

  it("stops buffering at MAX_HELLO_RECORD_BYTES", () => {
    const stream = tinyRecords();
    expect(codeOf(stream.subarray(0, MAX_HELLO_RECORD_BYTES))).toBe("need-more");
    expect(codeOf(stream)).toBe("E_HELLO_TOO_LARGE");
  });
});

describe("parseClientHello results", () => {
  const read = (spec: Spec) => parseClientHello(hello(spec));
  it.each([
    ["Example.COM", "example.com"],
    ["example.com.", "example.com"],
    ["_acme-challenge.a-1.example", "_acme-challenge.a-1.example"],
    ["localhost", "localhost"],
    [name(253), name(253)],
    [`${name(253)}.`, name(253)],
  ])("normalises host_name %s", (raw, expected) => {
    expect(read({ extensions: [sni(raw)] })).toEqual({
      status: "done",
      hello: {
        serverName: expected,
        alpn: [],
        recordBytes: hello({ extensions: [sni(raw)] }).length,
      },
    });
  });

  it("keeps types apart that share a bit position in different ranges of the duplicate check", () => {
    const types = [1, 31, 33, 63, 64, 65, 65281];
    const result = read({ extensions: [...types.map((t) => ext(t, [])), sni("a.test")] });
    expect(result).toMatchObject({ status: "done", hello: { serverName: "a.test" } });
  });

  it("skips unknown server name types and reads ALPN as latin1", () => {
    const other: Ext = ext(0, [0, 15, 7, 0, 1, 120, 0, 0, 8, ...ascii("a.b.test")]);
    const alpn = alpnExt(["h2", "http/1.1", Buffer.from([0xff, 0x00, 0x41])]);
    const result = read({ extensions: [ext(0xfe0d, [0]), alpn, other] });
    expect(result).toMatchObject({
      status: "done",
      hello: { serverName: "a.b.test", alpn: ["h2", "http/1.1", "\u00ff\u0000A"] },
    });
  });
});
