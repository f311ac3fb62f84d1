// Real ClientHellos recorded on this machine by tests/fixtures/clienthello/record.mjs.
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ClientHelloErrorCode,
  parseClientHello,
} from "../../../gateway-runtime/proxy/clienthello.js";
import { codeOf, NEED_MORE, records, sizesArb } from "./clienthello-encode.js";

interface Recorded {
  readonly file: string;
  readonly client: string;
  readonly about: string;
  readonly serverName?: string;
  readonly alpn?: string[];
  readonly error?: ClientHelloErrorCode;
  readonly bytes: number;
  readonly recordBytes: number;
  readonly records: number;
  readonly keyShareGroups: string[];
}
const fixtures = new URL("../../fixtures/clienthello/", import.meta.url);
const corpus = JSON.parse(readFileSync(new URL("index.json", fixtures), "utf8")) as Recorded[];
const load = (e: Recorded): Buffer => readFileSync(fileURLToPath(new URL(e.file, fixtures)));

/** The handshake bytes carried by a file's records. */
function handshakeOf(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let pos = 0; pos < bytes.length; pos += 5 + bytes.readUInt16BE(pos + 3)) {
    parts.push(bytes.subarray(pos + 5, pos + 5 + bytes.readUInt16BE(pos + 3)));
  }
  return Buffer.concat(parts);
}

describe("recorded ClientHellos", () => {
  it("covers large, multi-record and post-quantum hellos", () => {
    expect(corpus.some((e) => e.bytes > 1700)).toBe(true);
    expect(corpus.some((e) => e.records > 1)).toBe(true);
    expect(corpus.some((e) => e.keyShareGroups.includes("0x11ec"))).toBe(true); // X25519MLKEM768
    expect(corpus.map((e) => load(e).length)).toEqual(corpus.map((e) => e.bytes));
  });

  it.each(corpus)("$file ($about) fed byte by byte", (e) => {
    const bytes = load(e);
    for (let n = 0; n < e.recordBytes; n++) {
      expect(parseClientHello(bytes.subarray(0, n))).toEqual(NEED_MORE);
    }
    if (e.error !== undefined) {
      expect(codeOf(bytes)).toBe(e.error);
    } else {
      const hello = { serverName: e.serverName, alpn: e.alpn, recordBytes: e.recordBytes };
      expect(parseClientHello(bytes)).toEqual({ status: "done", hello });
    }
  });

  it("reads every recorded hello re-split into random records", () => {
    const ok = corpus.filter((e) => e.error === undefined);
    fc.assert(
      fc.property(fc.constantFrom(...ok), sizesArb, (e, sizes) => {
        const stream = records(handshakeOf(load(e)), sizes);
        const result = parseClientHello(stream);
        expect(result).toEqual({
          status: "done",
          hello: { serverName: e.serverName, alpn: e.alpn, recordBytes: stream.length },
        });
      }),
      { numRuns: 200 },
    );
  });
});
