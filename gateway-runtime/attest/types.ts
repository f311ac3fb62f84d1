/**
 * What attestation hands to registration: who the caller is (app id, instance id) and the app
 * info the authorization hook sees. Implementations: `CaAttestation` (the client certificate
 * chains to a configured CA and carries dstack's app-info extension) and `TdxAttestation` (the
 * certificate carries a TDX quote that binds its key; verified against Intel collateral).
 */
import { GatewayError } from "../errors.js";
import type { AppInfo } from "./app-info.js";

export type AttestErrorCode =
  /** The certificate (or an extension in it) cannot be parsed. */
  | "E_ATTEST_BAD_CERT"
  /** The certificate does not chain to a trusted CA. */
  | "E_ATTEST_UNTRUSTED"
  /** A certificate of the chain is outside its validity period. */
  | "E_ATTEST_EXPIRED"
  /** No app-info extension (CA mode). */
  | "E_ATTEST_NO_APP_INFO"
  /** The app-info extension is not dstack's msgpack AppInfo. */
  | "E_ATTEST_BAD_APP_INFO"
  /** The app-id extension and the app info disagree. */
  | "E_ATTEST_APP_ID_MISMATCH"
  /** The attested app id or instance id is empty. */
  | "E_ATTEST_EMPTY_ID"
  /** No quote or attestation extension (TDX mode). */
  | "E_ATTEST_NO_ATTESTATION"
  /** Evidence of a kind this gateway does not verify (another TEE, dstack's msgpack V1). */
  | "E_ATTEST_UNSUPPORTED"
  /** The quote, event log or attestation cannot be decoded. */
  | "E_ATTEST_BAD_EVIDENCE"
  /** report_data does not bind the certificate's public key. */
  | "E_ATTEST_REPORT_DATA"
  /** DCAP verification failed (signatures, PCK chain, CRLs, TCB status). */
  | "E_ATTEST_QUOTE_INVALID"
  /** The TD runs in debug mode or with a non-default SEAM/service TD. */
  | "E_ATTEST_TD_POLICY"
  /** Replaying the runtime events does not give the quoted RTMR3. */
  | "E_ATTEST_RTMR_MISMATCH"
  /** Collateral could not be fetched from the PCCS. */
  | "E_ATTEST_COLLATERAL"
  /** The attestation itself is misconfigured (no CA, bad PEM). */
  | "E_ATTEST_CONFIG";

export function attestError(
  code: AttestErrorCode,
  message: string,
  cause?: unknown,
): GatewayError<AttestErrorCode> {
  return new GatewayError(code, message, cause === undefined ? undefined : { cause });
}

export interface VerifiedPeer {
  /** Lowercase hex of the attested app id (dstack: `hex::encode(app_info.app_id)`). */
  readonly appId: string;
  /** Lowercase hex of the attested instance id. */
  readonly instanceId: string;
  /** Everything the authorization hook is shown. */
  readonly appInfo: AppInfo;
  /** Which verifier vouched for it. */
  readonly via: "ca" | "tdx";
}

export interface Attestation {
  /**
   * Verifies a client certificate (DER) and, optionally, the chain the client sent after it.
   * Throws a `GatewayError` with an `E_ATTEST_*` code and a reason a CVM operator can act on.
   */
  verify(peerCertDer: Buffer, chainDer?: readonly Buffer[]): Promise<VerifiedPeer>;
}
