import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeProxyV2,
  encodeProxyV2,
  PROXY_V2_SIGNATURE,
  ProxyProtocolError,
} from "../../../gateway-runtime/proxy/proxy-protocol.js";

/** Hex with spaces ignored, so vectors can be laid out field by field. */
const hex = (text: string): string => text.replaceAll(" ", "");
const SIG = "0d0a0d0a000d0a515549540a";

/** The spelling WHATWG URL gives an IPv6 address: an independent canonical form. */
const canonicalV6 = (address: string): string =>
  new URL(`http://[${address}]/`).hostname.slice(1, -1);

describe("encodeProxyV2 known vectors (proxy-protocol.txt §2.2)", () => {
  it.each([
    {
      about: "IPv4",
      addresses: {
        sourceAddress: "192.168.1.10",
        sourcePort: 54321,
        destAddress: "10.0.0.1",
        destPort: 443,
      },
      // sig | ver 2 + PROXY | TCP/IPv4 | len 12 | src | dst | 54321 | 443
      bytes: `${SIG} 21 11 000c c0a8010a 0a000001 d431 01bb`,
    },
    {
      about: "IPv6",
      addresses: {
        sourceAddress: "2001:db8::1",
        sourcePort: 1234,
        destAddress: "::1",
        destPort: 8443,
      },
      // sig | ver 2 + PROXY | TCP/IPv6 | len 36 | src | dst | 1234 | 8443
      bytes: `${SIG} 21 21 0024 20010db8000000000000000000000001 00000000000000000000000000000001 04d2 20fb`,
    },
    {
      about: "IPv4-mapped IPv6 goes as IPv4",
      addresses: {
        sourceAddress: "::ffff:203.0.113.7",
        sourcePort: 65535,
        destAddress: "::FFFF:c000:0201",
        destPort: 0,
      },
      bytes: `${SIG} 21 11 000c cb007107 c0000201 ffff 0000`,
    },
    {
      about: "mixed families go as IPv6 with the IPv4 side mapped",
      addresses: {
        sourceAddress: "198.51.100.2",
        sourcePort: 80,
        destAddress: "fe80::1%eth0",
        destPort: 443,
      },
      bytes: `${SIG} 21 21 0024 00000000000000000000ffffc6336402 fe800000000000000000000000000001 0050 01bb`,
    },
  ])("$about", ({ addresses, bytes }) => {
    const header = encodeProxyV2(addresses);
    expect(header.toString("hex")).toBe(hex(bytes));
    expect(header.subarray(0, 12).equals(PROXY_V2_SIGNATURE)).toBe(true);
  });

  it.each([
    ["a bad source address", { sourceAddress: "10.0.0.256" }, "E_PROXY_BAD_ADDRESS"],
    ["a host name", { destAddress: "localhost" }, "E_PROXY_BAD_ADDRESS"],
    ["an empty address", { sourceAddress: "" }, "E_PROXY_BAD_ADDRESS"],
    ["port 65536", { sourcePort: 65536 }, "E_PROXY_BAD_PORT"],
    ["a negative port", { destPort: -1 }, "E_PROXY_BAD_PORT"],
    ["a fractional port", { destPort: 1.5 }, "E_PROXY_BAD_PORT"],
  ])("rejects %s", (_about, change, code) => {
    const base = { sourceAddress: "10.0.0.1", sourcePort: 1, destAddress: "10.0.0.2", destPort: 2 };
    const attempt = (): Buffer => encodeProxyV2({ ...base, ...change });
    expect(attempt).toThrow(ProxyProtocolError);
    try {
      attempt();
    } catch (error) {
      expect((error as ProxyProtocolError).code).toBe(code);
    }
  });
});

describe("decodeProxyV2", () => {
  const v4 = encodeProxyV2({
    sourceAddress: "127.0.0.1",
    sourcePort: 40000,
    destAddress: "127.0.0.2",
    destPort: 443,
  });

  it("reads a header followed by payload and reports where the payload starts", () => {
    const withPayload = Buffer.concat([v4, Buffer.from("\x16\x03\x01")]);
    expect(decodeProxyV2(withPayload)).toEqual({
      family: "tcp4",
      sourceAddress: "127.0.0.1",
      sourcePort: 40000,
      destAddress: "127.0.0.2",
      destPort: 443,
      headerLength: 28,
    });
  });

  it("skips TLVs counted in the length", () => {
    const tlv = Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb]); // PP2_TYPE_NOOP, 2 bytes
    const header = Buffer.concat([v4, tlv]);
    header.writeUInt16BE(12 + tlv.length, 14);
    expect(decodeProxyV2(header)?.headerLength).toBe(16 + 12 + tlv.length);
  });

  it.each([
    ["a truncated header", v4.subarray(0, 27)],
    ["a v1 header", Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")],
    ["LOCAL", Buffer.concat([v4.subarray(0, 12), Buffer.from([0x20, 0x00, 0x00, 0x00])])],
    ["UDP over IPv4", Buffer.concat([v4.subarray(0, 13), Buffer.from([0x12]), v4.subarray(14)])],
    [
      "a length too short for the addresses",
      Buffer.concat([v4.subarray(0, 15), Buffer.from([8]), v4.subarray(16)]),
    ],
    [
      "version 1 in the binary format",
      Buffer.concat([v4.subarray(0, 12), Buffer.from([0x11]), v4.subarray(13)]),
    ],
  ])("gives undefined for %s", (_about, bytes) => {
    expect(decodeProxyV2(bytes)).toBeUndefined();
  });
});

describe("PROXY v2 round trip", () => {
  const port = fc.integer({ min: 0, max: 65535 });

  it("decodes what it encodes, IPv4", () => {
    fc.assert(
      fc.property(fc.ipV4(), port, fc.ipV4(), port, (src, sp, dst, dp) => {
        const addresses = { sourceAddress: src, sourcePort: sp, destAddress: dst, destPort: dp };
        const header = encodeProxyV2(addresses);
        expect(header.length).toBe(28);
        expect(decodeProxyV2(header)).toEqual({ family: "tcp4", headerLength: 28, ...addresses });
      }),
      { numRuns: 500 },
    );
  });

  it("decodes what it encodes, IPv6 in any spelling (canonical on the way out)", () => {
    const mapped = (address: string): boolean =>
      /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(canonicalV6(address));
    fc.assert(
      fc.property(fc.ipV6(), port, fc.ipV6(), port, (src, sp, dst, dp) => {
        fc.pre(!mapped(src) && !mapped(dst));
        const header = encodeProxyV2({
          sourceAddress: src,
          sourcePort: sp,
          destAddress: dst,
          destPort: dp,
        });
        const decoded = decodeProxyV2(header);
        expect(decoded).toEqual({
          family: "tcp6",
          sourceAddress: canonicalV6(src),
          sourcePort: sp,
          destAddress: canonicalV6(dst),
          destPort: dp,
          headerLength: 52,
        });
        if (decoded === undefined) throw new Error("no header decoded");
        expect(isIP(decoded.sourceAddress)).toBe(6);
        // the decoded (canonical) spelling encodes to the same bytes
        expect(encodeProxyV2(decoded).equals(header)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("sends every IPv4-mapped IPv6 address as IPv4", () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), port, (a, b, p) => {
        const header = encodeProxyV2({
          sourceAddress: `::ffff:${a}`,
          sourcePort: p,
          destAddress: b,
          destPort: p,
        });
        expect(decodeProxyV2(header)).toMatchObject({
          family: "tcp4",
          sourceAddress: a,
          destAddress: b,
        });
      }),
      { numRuns: 200 },
    );
  });
});
