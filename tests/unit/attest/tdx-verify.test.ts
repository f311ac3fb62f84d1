/**
 * TDX verification. What real data proves here: a real dstack quote verifies with @phala/dcap-qvl
 * against Intel's collateral served over the PCCS API, and its event log replays to its RTMR3.
 * What it cannot prove: no real quote binds a key we hold, so the success path of
 * `TdxAttestation` runs with a quote whose report_data and RTMR3 we patched, checked by a
 * verifier that parses but does not check signatures (the real verifier rejects that quote).
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TdxAttestation, tdxAppInfo } from "../../../gateway-runtime/attest/tdx/attestation.js";
import { PccsCollateralSource } from "../../../gateway-runtime/attest/tdx/collateral.js";
import {
  raTlsReportData,
  replayRtmr,
  runtimeEventsFromEventLog,
} from "../../../gateway-runtime/attest/tdx/events.js";
import {
  checkTdPolicy,
  DcapQuoteVerifier,
  parseTdReport,
  type QuoteVerifier,
  type VerifiedQuote,
} from "../../../gateway-runtime/attest/tdx/verifier.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import {
  createTestCa,
  issueRaTlsCert,
  newKeyPair,
  OID,
  raTlsExt,
} from "../../../testkit/ra-tls.js";
import { eventLogJson, patchQuote, scaleAttestation, type TestEvent } from "./tdx-encoders.js";
import { COLLATERAL_TIME, type FakePccs, fixtureQuoteReport, startPccs } from "./pccs.js";

const real = fixtureQuoteReport();
const realQuote = Buffer.from(real.quote, "hex");
const ca = createTestCa();
const APP = "3763bc34552cf3a27ff71ad5f7a90471562a1a2d";
const INSTANCE = "c3714eb66990eace777b4e664c16e09375dec4c9";

let pccs: FakePccs;
beforeAll(async () => {
  pccs = await startPccs();
});
afterAll(() => pccs.close());

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GatewayError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("expected a rejection");
}

function dcap(clock: { now: number }, opts: { timeoutMs?: number; ttlMs?: number } = {}) {
  const now = () => clock.now;
  const collateral = new PccsCollateralSource({
    url: `${pccs.url}/sgx/certification/v4/`,
    now,
    ...opts,
  });
  return { collateral, verifier: new DcapQuoteVerifier({ collateral, now }) };
}

describe("DcapQuoteVerifier with collateral from a PCCS", () => {
  it("verifies a real dstack quote against Intel collateral", async () => {
    const before = pccs.requests.length;
    const { verifier } = dcap({ now: COLLATERAL_TIME });
    const v = await verifier.verify(realQuote);
    expect(v.status).toBe("UpToDate");
    expect(v.report.reportData.toString("hex")).toBe(real.report_data);
    const events = runtimeEventsFromEventLog(Buffer.from(real.event_log));
    expect(v.report.rtMr3.equals(replayRtmr(events))).toBe(true);
    expect(pccs.requests.slice(before).sort()).toEqual([
      "/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
      "/sgx/certification/v4/rootcacrl",
      "/tdx/certification/v4/qe/identity?update=standard",
      "/tdx/certification/v4/tcb?fmspc=90C06F000000",
    ]);
  });

  it("fetches collateral once for concurrent and repeated quotes, again after its TTL", async () => {
    const clock = { now: COLLATERAL_TIME };
    const { collateral, verifier } = dcap(clock, { ttlMs: 60_000 });
    await Promise.all([verifier.verify(realQuote), verifier.verify(realQuote)]);
    await verifier.verify(realQuote);
    expect(collateral.fetches).toBe(1);
    clock.now += 60_001;
    await verifier.verify(realQuote);
    expect(collateral.fetches).toBe(2);
  });

  it("refetches once the TCB info's nextUpdate has passed, and then refuses it as expired", async () => {
    const clock = { now: Date.parse("2026-03-20T10:00:00Z") };
    const { collateral, verifier } = dcap(clock);
    await verifier.verify(realQuote);
    clock.now = Date.parse("2026-03-21T00:00:00Z");
    const f = await failure(verifier.verify(realQuote));
    expect(f.code).toBe("E_ATTEST_QUOTE_INVALID");
    expect(f.message).toMatch(/expired/);
    expect(collateral.fetches).toBe(2);
  });

  it("reports a failing PCCS as E_ATTEST_COLLATERAL and does not cache the failure", async () => {
    const { collateral, verifier } = dcap({ now: COLLATERAL_TIME });
    pccs.behave({ status: 503 });
    try {
      const f = await failure(verifier.verify(realQuote));
      expect(f.code).toBe("E_ATTEST_COLLATERAL");
      expect(f.message).toMatch(/answered 503/);
    } finally {
      pccs.behave({ status: 200 });
    }
    await verifier.verify(realQuote);
    expect(collateral.fetches).toBe(1);
  });

  it("gives up on a slow PCCS after its timeout", async () => {
    const { verifier } = dcap({ now: COLLATERAL_TIME }, { timeoutMs: 150 });
    pccs.behave({ delayMs: 2_000 });
    const started = performance.now();
    try {
      const f = await failure(verifier.verify(realQuote));
      expect(f.code).toBe("E_ATTEST_COLLATERAL");
      expect(f.message).toMatch(/timed out/);
    } finally {
      pccs.behave({ delayMs: 0 });
    }
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it("refuses a quote whose TD report was altered (its QE signature no longer holds)", async () => {
    const { verifier } = dcap({ now: COLLATERAL_TIME });
    const forged = patchQuote(realQuote, { reportData: Buffer.alloc(64, 1) });
    expect((await failure(verifier.verify(forged))).code).toBe("E_ATTEST_QUOTE_INVALID");
  });
});

describe("checkTdPolicy", () => {
  const base = parseTdReport(realQuote);
  it.each([
    ["a debug TD", { tdAttributes: Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]) }],
    ["a foreign TDX module", { mrSignerSeam: Buffer.alloc(48, 1) }],
    ["a service TD binding", { mrServiceTd: Buffer.alloc(48, 1) }],
  ])("refuses %s", (_, patch) => {
    expect(() => checkTdPolicy({ ...base, ...patch })).toThrow(GatewayError);
  });
  it("accepts the real production TD", () => {
    expect(() => checkTdPolicy(base)).not.toThrow();
  });
});

/** Parses without checking signatures: stands in for DCAP where no real quote can exist. */
class ParseOnlyVerifier implements QuoteVerifier {
  calls = 0;
  async verify(quote: Buffer): Promise<VerifiedQuote> {
    this.calls++;
    return {
      status: "UpToDate",
      advisoryIds: [],
      report: parseTdReport(quote),
      ppid: Buffer.from("ppid"),
    };
  }
}

const EVENTS: TestEvent[] = [
  { event: "system-preparing", payload: Buffer.alloc(0) },
  { event: "app-id", payload: Buffer.from(APP, "hex") },
  { event: "compose-hash", payload: Buffer.alloc(32, 0xc0) },
  { event: "instance-id", payload: Buffer.from(INSTANCE, "hex") },
  { event: "key-provider", payload: Buffer.from('{"name":"kms","id":"k"}') },
  { event: "system-ready", payload: Buffer.alloc(0) },
  { event: "instance-id", payload: Buffer.alloc(20, 9) }, // after system-ready: ignored
];
const rtmr3 = (events: TestEvent[]) =>
  replayRtmr(events.map((e) => ({ ...e, version: 1 as const })));

/** A client certificate whose quote binds its own key, as a dstack CVM would make. */
function boundCert(
  form: "legacy" | "attestation",
  opts: { events?: TestEvent[]; quoted?: TestEvent[]; claim?: Buffer } = {},
) {
  const keyPair = newKeyPair();
  const events = opts.events ?? EVENTS;
  const reportData = raTlsReportData(keyPair.spki);
  const quote = patchQuote(realQuote, { reportData, rtMr3: rtmr3(opts.quoted ?? events) });
  const more =
    form === "legacy"
      ? [raTlsExt(OID.tdxQuote, quote), raTlsExt(OID.eventLog, Buffer.from(eventLogJson(events)))]
      : [
          raTlsExt(
            OID.attestation,
            scaleAttestation({
              quote,
              runtimeEvents: events,
              reportData: opts.claim ?? reportData,
              config: JSON.stringify({
                vm_config: JSON.stringify({ os_image_hash: "ab".repeat(32) }),
              }),
            }),
          ),
        ];
  return issueRaTlsCert(ca, { keyPair, more });
}

describe("TdxAttestation", () => {
  it("checks the key binding before any network I/O", async () => {
    const before = pccs.requests.length;
    const { verifier } = dcap({ now: COLLATERAL_TIME });
    const cert = issueRaTlsCert(ca, {
      more: [
        raTlsExt(OID.tdxQuote, realQuote),
        raTlsExt(OID.eventLog, Buffer.from(real.event_log)),
      ],
    });
    const f = await failure(new TdxAttestation({ verifier }).verify(cert.der));
    expect(f.code).toBe("E_ATTEST_REPORT_DATA");
    expect(pccs.requests.length).toBe(before);
  });

  it("runs DCAP on a correctly bound quote, which catches the forgery", async () => {
    const { verifier } = dcap({ now: COLLATERAL_TIME });
    const f = await failure(new TdxAttestation({ verifier }).verify(boundCert("legacy").der));
    expect(f.code).toBe("E_ATTEST_QUOTE_INVALID");
  });

  it.each(["legacy", "attestation"] as const)(
    "derives dstack's app info from a bound %s certificate",
    async (form) => {
      const verifier = new ParseOnlyVerifier();
      const peer = await new TdxAttestation({ verifier }).verify(boundCert(form).der);
      expect(verifier.calls).toBe(1);
      expect({ appId: peer.appId, instanceId: peer.instanceId, via: peer.via }).toEqual({
        appId: APP,
        instanceId: INSTANCE,
        via: "tdx",
      });
      const r = parseTdReport(realQuote);
      const sha256 = (...b: Buffer[]) => createHash("sha256").update(Buffer.concat(b)).digest();
      const kp = Buffer.from('{"name":"kms","id":"k"}');
      const i = peer.appInfo;
      expect(i.composeHash).toEqual(Buffer.alloc(32, 0xc0));
      expect(i.keyProviderInfo).toEqual(kp);
      expect(i.deviceId).toEqual(sha256(Buffer.from("ppid")));
      expect(i.mrSystem).toEqual(sha256(r.mrTd, r.rtMr0, r.rtMr1, r.rtMr2, sha256(kp)));
      // The real quote's mr_config_id/mr_owner/mr_owner_config are zero: not hashed.
      expect(i.mrAggregated).toEqual(sha256(r.mrTd, r.rtMr0, r.rtMr1, r.rtMr2, rtmr3(EVENTS)));
      expect(i.osImageHash.toString("hex")).toBe(form === "legacy" ? "" : "ab".repeat(32));
      expect(i.initScriptHashes).toEqual([]);
    },
  );

  it("refuses an event log that does not replay to the quoted RTMR3", async () => {
    const quoted = EVENTS.map((e) =>
      e.event === "app-id" ? { ...e, payload: Buffer.alloc(20) } : e,
    );
    const cert = boundCert("legacy", { quoted });
    const f = await failure(
      new TdxAttestation({ verifier: new ParseOnlyVerifier() }).verify(cert.der),
    );
    expect(f.code).toBe("E_ATTEST_RTMR_MISMATCH");
  });

  it("refuses an attestation whose report_data differs from the quote's", async () => {
    // The attestation claims a binding of this key, but the quote carries another value.
    const cert = boundCert("attestation");
    const other = boundCert("attestation", { claim: Buffer.alloc(64) });
    expect(
      (await failure(new TdxAttestation({ verifier: new ParseOnlyVerifier() }).verify(other.der)))
        .code,
    ).toBe("E_ATTEST_REPORT_DATA");
    await expect(
      new TdxAttestation({ verifier: new ParseOnlyVerifier() }).verify(cert.der),
    ).resolves.toBeDefined();
  });

  it("refuses evidence without an instance id", async () => {
    const events = EVENTS.filter((e) => e.event !== "instance-id");
    const f = await failure(
      new TdxAttestation({ verifier: new ParseOnlyVerifier() }).verify(
        boundCert("legacy", { events }).der,
      ),
    );
    expect(f.code).toBe("E_ATTEST_EMPTY_ID");
  });

  it("optionally also requires the certificate to chain to a CA", async () => {
    const kms = createTestCa("KMS root");
    const strict = new TdxAttestation({ verifier: new ParseOnlyVerifier(), caPem: kms.pem });
    expect((await failure(strict.verify(boundCert("legacy").der))).code).toBe("E_ATTEST_UNTRUSTED");
    expect(
      (
        await new TdxAttestation({ verifier: new ParseOnlyVerifier(), caPem: ca.pem }).verify(
          boundCert("legacy").der,
        )
      ).instanceId,
    ).toBe(INSTANCE);
  });
});

describe("tdxAppInfo on the real dstack evidence", () => {
  it("reads the ids, compose hash and key provider from the verified events", () => {
    const events = runtimeEventsFromEventLog(Buffer.from(real.event_log));
    const info = tdxAppInfo(parseTdReport(realQuote), events, real.vm_config, Buffer.alloc(0));
    expect(info.appId.toString("hex")).toBe(APP);
    expect(info.instanceId.toString("hex")).toBe(INSTANCE);
    expect(info.composeHash.toString("hex")).toBe(
      "3763bc34552cf3a27ff71ad5f7a90471562a1a2df552dfc1998cba2d60da27e7",
    );
    expect(JSON.parse(info.keyProviderInfo.toString())).toEqual({
      name: "local-sgx",
      id: "1b7a49378403249b6986a907844cab0921eca32dd47e657f3c10311ccaeccf8b",
    });
    expect(info.osImageHash.toString("hex")).toBe(
      "14ad42d0270b444eaeb53918a5a94d9b17eec7a817cd336173b17c5327541c67",
    );
  });
});
