import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readRaTlsCertificate } from "../../../gateway-runtime/attest/extensions.js";
import {
  eventPreimage,
  raTlsReportData,
  replayRtmr,
  runtimeEventsFromEventLog,
} from "../../../gateway-runtime/attest/tdx/events.js";
import { quoteReportData, tdxEvidence } from "../../../gateway-runtime/attest/tdx/evidence.js";
import { decodeVersionedAttestation } from "../../../gateway-runtime/attest/tdx/scale.js";
import { parseTdReport } from "../../../gateway-runtime/attest/tdx/verifier.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import { createTestCa, issueRaTlsCert, OID, raTlsExt } from "../../../testkit/ra-tls.js";
import { compact, eventLogJson, scaleAttestation } from "./tdx-encoders.js";
import { fixtureQuoteReport } from "./pccs.js";

const real = fixtureQuoteReport();
const realQuote = Buffer.from(real.quote, "hex");
const ca = createTestCa();

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof GatewayError ? err.code : `other: ${String(err)}`;
  }
  return "no error";
}

describe("runtime events", () => {
  it("replays a real dstack event log to the RTMR3 its quote reports", () => {
    const events = runtimeEventsFromEventLog(Buffer.from(real.event_log));
    expect(events.map((e) => e.event)).toEqual([
      "system-preparing",
      "app-id",
      "compose-hash",
      "instance-id",
      "boot-mr-done",
      "key-provider",
      "system-ready",
      "LIUM_MINER_HOTKEY",
    ]);
    expect(replayRtmr(events).equals(parseTdReport(realQuote).rtMr3)).toBe(true);
    // Every digest the log states matches our V1 pre-image.
    const logged = JSON.parse(real.event_log) as { event_type: number; digest: string }[];
    const digests = logged.filter((e) => e.event_type === 0x08000001).map((e) => e.digest);
    expect(events.map((e) => createHash("sha384").update(eventPreimage(e)).digest("hex"))).toEqual(
      digests,
    );
  });

  it("gives another RTMR3 when any payload changes", () => {
    const events = runtimeEventsFromEventLog(Buffer.from(real.event_log));
    const tampered = events.map((e) =>
      e.event === "instance-id" ? { ...e, payload: Buffer.alloc(20) } : e,
    );
    expect(replayRtmr(tampered).equals(replayRtmr(events))).toBe(false);
  });

  it("builds V2 pre-images as RFC 8785 JSON", () => {
    const e = { event: 'a"b', payload: Buffer.from([0xde, 0xad]), version: 2 as const };
    expect(eventPreimage(e).toString()).toBe('{"name":"a\\"b","payload":"dead","type":134217729}');
  });

  it("binds a certificate key as SHA-512 of 'ratls-cert:' and the SPKI DER", () => {
    const spki = Buffer.from("3059301306072a8648ce3d020106082a8648ce3d03010703420004", "hex");
    expect(raTlsReportData(spki).toString("hex")).toBe(
      createHash("sha512")
        .update(Buffer.concat([Buffer.from("ratls-cert:"), spki]))
        .digest("hex"),
    );
    expect(raTlsReportData(spki)).toHaveLength(64);
  });

  it.each([
    ["not JSON", "{"],
    ["not a list", "{}"],
    ["a runtime event without a name", '[{"event_type":134217729,"event_payload":""}]'],
    ["a payload that is not hex", '[{"event_type":134217729,"event":"x","event_payload":"zz"}]'],
    ["version 3", '[{"event_type":134217729,"event":"x","event_payload":"","version":3}]'],
  ])("refuses an event log that is %s", (_, json) => {
    expect(code(() => runtimeEventsFromEventLog(Buffer.from(json)))).toBe("E_ATTEST_BAD_EVIDENCE");
  });
});

describe("SCALE attestation (extension .8)", () => {
  it.each([
    [0, "00"],
    [1, "04"],
    [63, "fc"],
    [64, "0101"],
    [16383, "fdff"],
    [16384, "02000100"],
    [1073741823, "feffffff"],
  ])("reads compact %i from %s", (n, hex) => {
    expect(compact(n).toString("hex")).toBe(hex);
    // A one-byte "quote" vector of length n is enough to exercise the reader.
    const att = Buffer.concat([Buffer.from("0000", "hex"), Buffer.from(hex, "hex")]);
    const rest = Buffer.concat([compact(0), compact(0), Buffer.alloc(64), compact(0)]);
    if (n > 20_000) {
      // A length past the input is refused before anything is allocated.
      expect(code(() => decodeVersionedAttestation(Buffer.concat([att, rest])))).toBe(
        "E_ATTEST_BAD_EVIDENCE",
      );
      return;
    }
    const body = Buffer.alloc(n);
    expect(decodeVersionedAttestation(Buffer.concat([att, body, rest])).quote).toHaveLength(n);
  });

  it("decodes dstack's pinned CSR v2 encoding (ra-tls cert.rs test vector)", () => {
    const csr = Buffer.from(
      "44706c65617365207369676e20636572743a0c0102030040746573742e6578616d706c652e636f6d000100010000000000040900000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
      "hex",
    );
    // confirm, pubkey, then CertConfigV2 (org None, subject, no SANs, 4 bools, 2 Nones)
    const attestation = csr.subarray(1 + 17 + 1 + 3 + 1 + 1 + 16 + 1 + 4 + 2);
    const ev = decodeVersionedAttestation(attestation);
    expect(ev.quote).toEqual(Buffer.from([9]));
    expect(ev.runtimeEvents).toEqual([]);
    expect(ev.reportData).toEqual(Buffer.alloc(64));
    expect(ev.config).toBe("");
  });

  it("round-trips what a SCALE encoder wrote (property)", () => {
    const arb = fc.record({
      quote: fc.uint8Array({ maxLength: 20_000 }),
      events: fc.array(
        fc.record({
          event: fc.string({ maxLength: 30 }),
          payload: fc.uint8Array({ maxLength: 100 }),
        }),
        { maxLength: 10 },
      ),
      reportData: fc.uint8Array({ minLength: 64, maxLength: 64 }),
      config: fc.string({ maxLength: 200 }),
    });
    fc.assert(
      fc.property(arb, (a) => {
        const events = a.events.map((e) => ({ event: e.event, payload: Buffer.from(e.payload) }));
        const raw = scaleAttestation({
          quote: Buffer.from(a.quote),
          runtimeEvents: events,
          reportData: Buffer.from(a.reportData),
          config: a.config,
        });
        const ev = decodeVersionedAttestation(raw);
        expect(ev.quote).toEqual(Buffer.from(a.quote));
        expect(ev.runtimeEvents).toEqual(events.map((e) => ({ ...e, version: 1 })));
        expect(ev.reportData).toEqual(Buffer.from(a.reportData));
        expect(ev.config).toBe(a.config);
      }),
      { numRuns: 50 },
    );
  });

  it.each([
    [
      "trailing bytes",
      (b: Buffer) => Buffer.concat([b, Buffer.from([0])]),
      "E_ATTEST_BAD_EVIDENCE",
    ],
    ["truncation", (b: Buffer) => b.subarray(0, b.length - 1), "E_ATTEST_BAD_EVIDENCE"],
    ["the msgpack V1 schema", () => Buffer.from([0x83, 0xa1, 0x76]), "E_ATTEST_UNSUPPORTED"],
    [
      "an SEV-SNP platform",
      (b: Buffer) => Buffer.concat([Buffer.from([0, 3]), b.subarray(2)]),
      "E_ATTEST_UNSUPPORTED",
    ],
    ["an empty value", () => Buffer.alloc(0), "E_ATTEST_BAD_EVIDENCE"],
  ])("refuses %s", (_, mutate, want) => {
    const good = scaleAttestation({
      quote: Buffer.from([1]),
      runtimeEvents: [],
      reportData: Buffer.alloc(64),
    });
    expect(code(() => decodeVersionedAttestation(mutate(good)))).toBe(want);
  });
});

describe("tdxEvidence", () => {
  const events = [{ event: "app-id", payload: Buffer.alloc(20, 1) }];

  it("prefers the attestation extension over the legacy quote", () => {
    const cert = issueRaTlsCert(ca, {
      more: [
        raTlsExt(
          OID.attestation,
          scaleAttestation({
            quote: Buffer.from([7]),
            runtimeEvents: events,
            reportData: Buffer.alloc(64, 3),
          }),
        ),
        raTlsExt(OID.tdxQuote, realQuote),
        raTlsExt(OID.eventLog, Buffer.from(eventLogJson(events))),
      ],
    });
    const ev = tdxEvidence(readRaTlsCertificate(cert.der));
    expect(ev.quote).toEqual(Buffer.from([7]));
    expect(ev.reportData).toEqual(Buffer.alloc(64, 3));
  });

  it("reads the legacy quote + event log, gzip-compressed or not; report_data is the quote's", () => {
    for (const log of [
      Buffer.from(real.event_log),
      Buffer.concat([Buffer.from("ELGZv1"), gzipSync(real.event_log)]),
    ]) {
      const cert = issueRaTlsCert(ca, {
        more: [raTlsExt(OID.tdxQuote, realQuote), raTlsExt(OID.eventLog, log)],
      });
      const ev = tdxEvidence(readRaTlsCertificate(cert.der));
      expect(ev.reportData.toString("hex")).toBe(real.report_data);
      expect(ev.reportData).toEqual(quoteReportData(realQuote));
      expect(ev.runtimeEvents).toHaveLength(8);
      expect(ev.config).toBe("");
    }
  });

  it("refuses a quote without its event log, and an event log that inflates past 16 KiB", () => {
    const lonely = issueRaTlsCert(ca, { more: [raTlsExt(OID.tdxQuote, realQuote)] });
    expect(code(() => tdxEvidence(readRaTlsCertificate(lonely.der)))).toBe("E_ATTEST_BAD_EVIDENCE");
    const bomb = Buffer.concat([Buffer.from("ELGZv1"), gzipSync(Buffer.alloc(64 * 1024, 0x20))]);
    const cert = issueRaTlsCert(ca, {
      more: [raTlsExt(OID.tdxQuote, realQuote), raTlsExt(OID.eventLog, bomb)],
    });
    expect(code(() => tdxEvidence(readRaTlsCertificate(cert.der)))).toBe("E_ATTEST_BAD_EVIDENCE");
  });

  it("says 'no attestation provided' when there is no evidence, so dstack CVMs retry", () => {
    const cert = issueRaTlsCert(ca, {});
    try {
      tdxEvidence(readRaTlsCertificate(cert.der));
      expect.unreachable();
    } catch (err) {
      expect((err as GatewayError).code).toBe("E_ATTEST_NO_ATTESTATION");
      expect((err as Error).message).toContain("no attestation provided");
    }
  });
});
