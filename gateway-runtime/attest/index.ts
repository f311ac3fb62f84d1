/**
 * Client attestation for CVM registration: who is calling (app id, instance id), proven by an
 * RA-TLS client certificate. `createAttestation` picks the verifier for a mode.
 */
import { CaAttestation } from "./ca.js";
import { PccsCollateralSource } from "./tdx/collateral.js";
import { TdxAttestation } from "./tdx/attestation.js";
import { DcapQuoteVerifier } from "./tdx/verifier.js";
import type { Attestation } from "./types.js";

export { type AppInfo, type AppInfoJson, appInfoJson, decodeAppInfo } from "./app-info.js";
export { CaAttestation, type CaAttestationOptions, verifyChain } from "./ca.js";
export { RA_TLS_OID, type RaTlsCertificate, readRaTlsCertificate } from "./extensions.js";
export { TdxAttestation, type TdxAttestationOptions, tdxAppInfo } from "./tdx/attestation.js";
export {
  type CollateralKey,
  type CollateralSource,
  PccsCollateralSource,
  type PccsOptions,
} from "./tdx/collateral.js";
export { raTlsReportData, replayRtmr, type RuntimeEvent } from "./tdx/events.js";
export {
  checkTdPolicy,
  DcapQuoteVerifier,
  parseTdReport,
  type QuoteVerifier,
  type TdReport,
  type VerifiedQuote,
} from "./tdx/verifier.js";
export { type Attestation, type AttestErrorCode, attestError, type VerifiedPeer } from "./types.js";

export type AttestationSettings =
  | {
      /**
       * Trust client certificates that chain to `caPem` and read the app info extension: the
       * KMS root for dstack 0.5.6+ CVMs, or a CA of your own for development.
       */
      readonly mode: "ca";
      readonly caPem: string;
    }
  | {
      /** Verify the TDX quote in the client certificate against collateral from `pccsUrl`. */
      readonly mode: "tdx";
      readonly pccsUrl: string;
      /** @default 10_000 */
      readonly pccsTimeoutMs?: number;
      /** Optionally require the certificate to chain to these CAs as well. */
      readonly caPem?: string;
    };

export function createAttestation(
  settings: AttestationSettings,
  now: () => number = Date.now,
): Attestation {
  if (settings.mode === "ca") return new CaAttestation({ caPem: settings.caPem, now });
  const collateral = new PccsCollateralSource({
    url: settings.pccsUrl,
    now,
    ...(settings.pccsTimeoutMs === undefined ? {} : { timeoutMs: settings.pccsTimeoutMs }),
  });
  return new TdxAttestation({
    verifier: new DcapQuoteVerifier({ collateral, now }),
    now,
    ...(settings.caPem === undefined ? {} : { caPem: settings.caPem }),
  });
}
