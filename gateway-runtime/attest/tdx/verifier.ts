/**
 * DCAP verification of a TDX quote with @phala/dcap-qvl against collateral from a PCCS, plus
 * dstack's TD policy (`validate_tcb`: no debug TD, default SEAM signer, no service TD).
 */
import { intel, Quote, QuoteVerifier as DcapVerifier, type TcbStatus } from "@phala/dcap-qvl";
import { GatewayError } from "../../errors.js";
import { attestError } from "../types.js";
import type { CollateralSource } from "./collateral.js";

/** The TD report fields attestation uses, 48 bytes each unless noted. */
export interface TdReport {
  readonly mrTd: Buffer;
  readonly mrConfigId: Buffer;
  readonly mrOwner: Buffer;
  readonly mrOwnerConfig: Buffer;
  readonly rtMr0: Buffer;
  readonly rtMr1: Buffer;
  readonly rtMr2: Buffer;
  readonly rtMr3: Buffer;
  /** 64 bytes. */
  readonly reportData: Buffer;
  /** 8 bytes. */
  readonly tdAttributes: Buffer;
  readonly mrSignerSeam: Buffer;
  /** TDREPORT15 only. */
  readonly mrServiceTd?: Buffer;
}

export interface VerifiedQuote {
  readonly status: TcbStatus;
  readonly advisoryIds: readonly string[];
  readonly report: TdReport;
  /** The platform's PPID (may be empty); dstack's device id is its SHA-256. */
  readonly ppid: Buffer;
}

export interface QuoteVerifier {
  /** Throws `E_ATTEST_QUOTE_INVALID`, `E_ATTEST_TD_POLICY`, `E_ATTEST_COLLATERAL`. */
  verify(quote: Buffer): Promise<VerifiedQuote>;
}

/** Reads the TD report out of a quote (no verification). Throws `E_ATTEST_BAD_EVIDENCE`. */
export function parseTdReport(quote: Buffer): TdReport {
  let parsed: Quote;
  try {
    parsed = Quote.parse(quote);
  } catch (cause) {
    throw attestError("E_ATTEST_BAD_EVIDENCE", "TDX quote does not parse", cause);
  }
  const td15 = parsed.report.asTd15();
  const td = td15?.base ?? parsed.report.asTd10();
  if (!td) throw attestError("E_ATTEST_BAD_EVIDENCE", "quote is not a TDX quote (no TD report)");
  const b = (v: Uint8Array) => Buffer.from(v);
  return {
    mrTd: b(td.mrTd),
    mrConfigId: b(td.mrConfigId),
    mrOwner: b(td.mrOwner),
    mrOwnerConfig: b(td.mrOwnerConfig),
    rtMr0: b(td.rtMr0),
    rtMr1: b(td.rtMr1),
    rtMr2: b(td.rtMr2),
    rtMr3: b(td.rtMr3),
    reportData: b(td.reportData),
    tdAttributes: b(td.tdAttributes),
    mrSignerSeam: b(td.mrSignerSeam),
    ...(td15 ? { mrServiceTd: b(td15.mrServiceTd) } : {}),
  };
}

/** dstack's `validate_tcb` for TD reports. Throws `E_ATTEST_TD_POLICY`. */
export function checkTdPolicy(report: TdReport): void {
  if (((report.tdAttributes[0] ?? 0) & 0x01) !== 0) {
    throw attestError("E_ATTEST_TD_POLICY", "the TD runs in debug mode");
  }
  if (report.mrSignerSeam.some((b) => b !== 0)) {
    throw attestError(
      "E_ATTEST_TD_POLICY",
      "the TDX module is not Intel's (mr_signer_seam is set)",
    );
  }
  if (report.mrServiceTd?.some((b) => b !== 0)) {
    throw attestError(
      "E_ATTEST_TD_POLICY",
      "the TD is bound to a service TD (mr_service_td is set)",
    );
  }
}

export interface DcapVerifierOptions {
  readonly collateral: CollateralSource;
  /** Clock, ms since the epoch. @default Date.now */
  readonly now?: () => number;
  /** Intel SGX root CA (DER) to trust; tests only. @default Intel's production root */
  readonly rootCaDer?: Buffer;
}

export class DcapQuoteVerifier implements QuoteVerifier {
  readonly #collateral: CollateralSource;
  readonly #now: () => number;
  readonly #dcap: DcapVerifier;

  constructor(options: DcapVerifierOptions) {
    this.#collateral = options.collateral;
    this.#now = options.now ?? Date.now;
    this.#dcap = options.rootCaDer
      ? DcapVerifier.newWithRootCa(options.rootCaDer)
      : DcapVerifier.newProd();
  }

  async verify(quote: Buffer): Promise<VerifiedQuote> {
    let key: { fmspc: string; ca: string; tee: "tdx" | "sgx" };
    try {
      const parsed = Quote.parse(quote);
      key = {
        fmspc: intel.getFmspc(parsed).toString("hex").toUpperCase(),
        ca: intel.getCa(parsed),
        tee: parsed.header.isSgx() ? "sgx" : "tdx",
      };
    } catch (cause) {
      throw attestError(
        "E_ATTEST_BAD_EVIDENCE",
        `TDX quote or its PCK certificate does not parse: ${(cause as Error).message}`,
        cause,
      );
    }
    if (key.tee !== "tdx") throw attestError("E_ATTEST_UNSUPPORTED", "quote is an SGX quote");
    const collateral = await this.#collateral.get(key);
    let verified: ReturnType<DcapVerifier["verify"]>;
    try {
      verified = this.#dcap.verify(quote, collateral, Math.floor(this.#now() / 1000));
    } catch (cause) {
      if (cause instanceof GatewayError) throw cause;
      throw attestError(
        "E_ATTEST_QUOTE_INVALID",
        `TDX quote verification failed: ${(cause as Error).message}`,
        cause,
      );
    }
    const report = parseTdReport(quote);
    checkTdPolicy(report);
    return {
      status: verified.status,
      advisoryIds: [...verified.advisory_ids],
      report,
      ppid: Buffer.from(verified.ppid ?? []),
    };
  }
}
