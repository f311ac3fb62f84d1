/**
 * Where a certificate keeps its TDX evidence, in dstack's order of preference
 * (ra-tls `attestation.rs` `from_ext_getter`): the attestation extension (.8) if present, else
 * the legacy pair TDX quote (.1) + JSON event log (.2), whose report_data is the quote's own.
 */
import type { RaTlsCertificate } from "../extensions.js";
import { attestError } from "../types.js";
import { decompressEventLog, runtimeEventsFromEventLog } from "./events.js";
import { decodeVersionedAttestation, type TdxEvidence } from "./scale.js";

/** Offset of report_data in a TD report (TDREPORT10 and TDREPORT15 start alike). */
const TD_REPORT_DATA_OFFSET = 520;
/** Quote header size; v5 quotes add a 6-byte body descriptor after it. */
const HEADER_LEN = 48;

/** report_data of a v4/v5 TDX quote, read without verifying anything. */
export function quoteReportData(quote: Buffer): Buffer {
  if (quote.length < HEADER_LEN + 6) {
    throw attestError("E_ATTEST_BAD_EVIDENCE", "TDX quote is too short");
  }
  const version = quote.readUInt16LE(0);
  const body = version === 5 ? HEADER_LEN + 6 : HEADER_LEN;
  const at = body + TD_REPORT_DATA_OFFSET;
  if (version !== 4 && version !== 5) {
    throw attestError("E_ATTEST_BAD_EVIDENCE", `TDX quote version ${version} is not 4 or 5`);
  }
  if (quote.length < at + 64) throw attestError("E_ATTEST_BAD_EVIDENCE", "TDX quote is too short");
  return Buffer.from(quote.subarray(at, at + 64));
}

/**
 * The evidence in `cert`. A certificate with neither form is `E_ATTEST_NO_ATTESTATION`, whose
 * message contains "no attestation provided": dstack CVMs look for that text and retry with
 * their quote-carrying certificate.
 */
export function tdxEvidence(cert: RaTlsCertificate): TdxEvidence {
  const { ext } = cert;
  if (ext.attestation) return decodeVersionedAttestation(ext.attestation);
  if (ext.tdxQuote) {
    if (!ext.eventLog) {
      throw attestError("E_ATTEST_BAD_EVIDENCE", "TDX event log missing (1.3.6.1.4.1.62397.1.2)");
    }
    return {
      quote: ext.tdxQuote,
      runtimeEvents: runtimeEventsFromEventLog(decompressEventLog(ext.eventLog)),
      reportData: quoteReportData(ext.tdxQuote),
      config: "",
    };
  }
  throw attestError(
    "E_ATTEST_NO_ATTESTATION",
    "no attestation provided: the client certificate carries neither an attestation (1.3.6.1.4.1.62397.1.8) nor a TDX quote (1.3.6.1.4.1.62397.1.1)",
  );
}
