/**
 * TDX mode: the client certificate carries a TDX quote whose report_data binds the certificate's
 * public key, as dstack's RA-TLS does (ra-tls `verify_with_ra_pubkey`, dstack-attest
 * `verify_tdx_quote_with_events`, `decode_app_info`):
 * 1. evidence from the attestation extension (.8, SCALE V0) or the quote (.1) + event log (.2);
 * 2. report_data == SHA-512("ratls-cert:" || SPKI DER), checked before any network I/O;
 * 3. DCAP verification of the quote and dstack's TD policy;
 * 4. replayed runtime events == the quoted RTMR3, and the quote's report_data == the claimed one;
 * 5. app info derived from the verified events and measurements (app-id and instance-id events).
 * The certificate's issuer is not checked unless `caPem` is given: the quote is the trust anchor.
 */
import { createHash, type X509Certificate } from "node:crypto";
import { type AppInfo, appInfoJson } from "../app-info.js";
import { parsePemBundle, verifyChain, x509FromDer } from "../ca.js";
import { readRaTlsCertificate } from "../extensions.js";
import { type Attestation, attestError, type VerifiedPeer } from "../types.js";
import {
  findEventPayload,
  findEventPayloads,
  type RuntimeEvent,
  raTlsReportData,
  replayRtmr,
} from "./events.js";
import { tdxEvidence } from "./evidence.js";
import type { QuoteVerifier, TdReport, VerifiedQuote } from "./verifier.js";

export interface TdxAttestationOptions {
  readonly verifier: QuoteVerifier;
  /** Also require the certificate to chain to these CAs (e.g. the KMS root). */
  readonly caPem?: string;
  /** Clock for the optional chain check. @default Date.now */
  readonly now?: () => number;
}

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

/** os_image_hash from the VM config JSON (itself possibly wrapped as `{"vm_config": "…"}`). */
export function osImageHash(config: string): Buffer {
  let value: unknown;
  try {
    value = JSON.parse(config === "" ? "{}" : config);
    const inner = (value as { vm_config?: unknown }).vm_config;
    if (typeof inner === "string") value = JSON.parse(inner);
  } catch (cause) {
    throw attestError("E_ATTEST_BAD_EVIDENCE", "attestation VM config is not JSON", cause);
  }
  const hash = (value as { os_image_hash?: unknown } | null)?.os_image_hash;
  if (hash === undefined || hash === null) return Buffer.alloc(0);
  if (typeof hash !== "string" || !/^(0x)?([0-9a-fA-F]{2})*$/.test(hash)) {
    throw attestError("E_ATTEST_BAD_EVIDENCE", "VM config os_image_hash is not hex");
  }
  return Buffer.from(hash.replace(/^0x/, ""), "hex");
}

/** dstack's `decode_app_info(false)` for a verified TDX quote and its runtime events. */
export function tdxAppInfo(
  report: TdReport,
  events: readonly RuntimeEvent[],
  config: string,
  ppid: Buffer,
): AppInfo {
  const keyProviderInfo = findEventPayload(events, "key-provider") ?? Buffer.alloc(0);
  const mrKeyProvider = keyProviderInfo.length > 0 ? sha256(keyProviderInfo) : Buffer.alloc(32);
  const { mrTd, rtMr0, rtMr1, rtMr2 } = report;
  const owner = [report.mrConfigId, report.mrOwner, report.mrOwnerConfig];
  return {
    appId: findEventPayload(events, "app-id") ?? Buffer.alloc(0),
    composeHash: findEventPayload(events, "compose-hash") ?? Buffer.alloc(0),
    instanceId: findEventPayload(events, "instance-id") ?? Buffer.alloc(0),
    deviceId: sha256(ppid),
    mrSystem: sha256(mrTd, rtMr0, rtMr1, rtMr2, mrKeyProvider),
    // mr_config_id, mr_owner and mr_owner_config count only when one of them is set.
    mrAggregated: sha256(
      mrTd,
      rtMr0,
      rtMr1,
      rtMr2,
      replayRtmr(events),
      ...(owner.some((m) => m.some((b) => b !== 0)) ? owner : []),
    ),
    osImageHash: osImageHash(config),
    keyProviderInfo,
    initScriptHashes: findEventPayloads(events, "init-script-hash"),
  };
}

export class TdxAttestation implements Attestation {
  readonly #verifier: QuoteVerifier;
  readonly #roots: X509Certificate[] | undefined;
  readonly #now: () => number;

  constructor(options: TdxAttestationOptions) {
    this.#verifier = options.verifier;
    this.#roots = options.caPem === undefined ? undefined : parsePemBundle(options.caPem, "CA");
    this.#now = options.now ?? Date.now;
  }

  async verify(peerCertDer: Buffer, chainDer: readonly Buffer[] = []): Promise<VerifiedPeer> {
    const cert = readRaTlsCertificate(peerCertDer);
    if (this.#roots) {
      let leaf: X509Certificate;
      let chain: X509Certificate[];
      try {
        leaf = x509FromDer(peerCertDer);
        chain = chainDer.map(x509FromDer);
      } catch (cause) {
        throw attestError("E_ATTEST_BAD_CERT", "client certificate does not parse", cause);
      }
      verifyChain(leaf, chain, this.#roots, this.#now());
    }
    const evidence = tdxEvidence(cert);
    if (!evidence.reportData.equals(raTlsReportData(cert.spki))) {
      throw attestError(
        "E_ATTEST_REPORT_DATA",
        "report data mismatch: the quote does not bind this certificate's public key",
      );
    }
    const verified: VerifiedQuote = await this.#verifier.verify(evidence.quote);
    const { report } = verified;
    const replayed = replayRtmr(evidence.runtimeEvents);
    if (!replayed.equals(report.rtMr3)) {
      throw attestError(
        "E_ATTEST_RTMR_MISMATCH",
        `RTMR3 mismatch, quoted: ${report.rtMr3.toString("hex")}, replayed: ${replayed.toString("hex")}`,
      );
    }
    if (!report.reportData.equals(evidence.reportData)) {
      throw attestError("E_ATTEST_REPORT_DATA", "tdx report_data mismatch");
    }
    const appInfo = tdxAppInfo(report, evidence.runtimeEvents, evidence.config, verified.ppid);
    const { app_id, instance_id } = appInfoJson(appInfo);
    if (app_id === "") throw attestError("E_ATTEST_EMPTY_ID", "app id is empty");
    if (instance_id === "") {
      throw attestError("E_ATTEST_EMPTY_ID", "instance id is empty (no_instance_id is set?)");
    }
    return { appId: app_id, instanceId: instance_id, appInfo, via: "tdx" };
  }
}
