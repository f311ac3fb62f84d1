/**
 * DCAP collateral from a PCCS (Intel's Provisioning Certificate Caching Service API v4, the same
 * endpoints @phala/dcap-qvl's `getCollateral` uses), cached per TEE type, FMSPC and PCK CA until
 * the TCB info or QE identity says the next update is due, and at most `ttlMs`. Concurrent misses
 * share one fetch; failures are not cached. Every request is bounded by `timeoutMs`.
 */
import type { Collateral } from "@phala/dcap-qvl";
import { GatewayError } from "../../errors.js";
import { attestError } from "../types.js";

export interface CollateralKey {
  readonly tee: "tdx" | "sgx";
  /** Uppercase hex, e.g. "90C06F000000". */
  readonly fmspc: string;
  /** "processor" or "platform". */
  readonly ca: string;
}

export interface CollateralSource {
  get(key: CollateralKey): Promise<Collateral>;
}

export interface PccsOptions {
  /** PCCS base URL, e.g. "https://pccs.phala.network" (a trailing `/sgx/certification/v4` is ok). */
  readonly url: string;
  /** Bound on each HTTP request. @default 10_000 */
  readonly timeoutMs?: number;
  /** Longest time a fetched collateral is reused. @default 1 hour */
  readonly ttlMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

interface Entry {
  readonly collateral: Collateral;
  readonly expiresAt: number;
}

function failure(message: string, cause?: unknown) {
  return attestError("E_ATTEST_COLLATERAL", message, cause);
}

export class PccsCollateralSource implements CollateralSource {
  readonly #base: string;
  readonly #timeoutMs: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Collateral>>();
  /** Completed fetches, for tests and metrics. */
  fetches = 0;

  constructor(options: PccsOptions) {
    this.#base = options.url.replace(/\/+$/, "").replace(/\/(sgx|tdx)\/certification\/v4$/, "");
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#ttlMs = options.ttlMs ?? 3_600_000;
    this.#now = options.now ?? Date.now;
  }

  get(key: CollateralKey): Promise<Collateral> {
    const id = `${key.tee}:${key.fmspc.toUpperCase()}:${key.ca}`;
    const hit = this.#cache.get(id);
    if (hit && this.#now() < hit.expiresAt) return Promise.resolve(hit.collateral);
    let pending = this.#inflight.get(id);
    if (!pending) {
      pending = this.#fetch(key).finally(() => this.#inflight.delete(id));
      this.#inflight.set(id, pending);
      pending.then(
        (collateral) => this.#cache.set(id, { collateral, expiresAt: this.#expiry(collateral) }),
        () => this.#cache.delete(id),
      );
    }
    return pending;
  }

  #expiry(c: Collateral): number {
    const next = (json: string) =>
      Date.parse((JSON.parse(json) as { nextUpdate: string }).nextUpdate);
    const due = Math.min(next(c.tcb_info), next(c.qe_identity));
    return Math.min(Number.isNaN(due) ? 0 : due, this.#now() + this.#ttlMs);
  }

  async #get(path: string): Promise<{ body: Buffer; headers: Headers }> {
    const url = `${this.#base}/${path}`;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.#timeoutMs), redirect: "error" });
      const body = Buffer.from(await res.arrayBuffer());
      if (!res.ok) throw failure(`PCCS ${url} answered ${res.status}`);
      return { body, headers: res.headers };
    } catch (cause) {
      if (cause instanceof GatewayError) throw cause;
      const why = cause instanceof Error && cause.name === "TimeoutError" ? "timed out" : "failed";
      throw failure(`PCCS request ${url} ${why}: ${(cause as Error).message}`, cause);
    }
  }

  async #fetch(key: CollateralKey): Promise<Collateral> {
    const fmspc = key.fmspc.toUpperCase();
    const [pckCrl, tcb, qe, rootCrl] = await Promise.all([
      this.#get(`sgx/certification/v4/pckcrl?ca=${encodeURIComponent(key.ca)}&encoding=der`),
      this.#get(`${key.tee}/certification/v4/tcb?fmspc=${encodeURIComponent(fmspc)}`),
      this.#get(`${key.tee}/certification/v4/qe/identity?update=standard`),
      this.#get("sgx/certification/v4/rootcacrl"),
    ]);
    const header = (r: { headers: Headers }, ...names: string[]) => {
      for (const name of names) {
        const v = r.headers.get(name);
        if (v) return decodeURIComponent(v);
      }
      throw failure(`PCCS response lacks header ${names.join(" or ")}`);
    };
    const signed = (raw: Buffer, field: string): { body: string; signature: number[] } => {
      try {
        const json = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
        const signature = json.signature;
        if (json[field] === undefined || typeof signature !== "string") throw new Error("fields");
        // Intel signs the compact JSON text of the field; it round-trips through JSON.parse.
        return { body: JSON.stringify(json[field]), signature: [...Buffer.from(signature, "hex")] };
      } catch (cause) {
        throw failure(`PCCS ${field} response is not the signed JSON document`, cause);
      }
    };
    // PCCS serves the root CA CRL as hex text; Intel's own CRL files are DER.
    const rootText = rootCrl.body.toString("latin1").trim();
    const rootCaCrl = /^([0-9a-fA-F]{2})+$/.test(rootText)
      ? Buffer.from(rootText, "hex")
      : rootCrl.body;
    const tcbInfo = signed(tcb.body, "tcbInfo");
    const qeIdentity = signed(qe.body, "enclaveIdentity");
    this.fetches++;
    return {
      pck_crl_issuer_chain: header(pckCrl, "SGX-PCK-CRL-Issuer-Chain"),
      root_ca_crl: [...rootCaCrl],
      pck_crl: [...pckCrl.body],
      tcb_info_issuer_chain: header(tcb, "SGX-TCB-Info-Issuer-Chain", "TCB-Info-Issuer-Chain"),
      tcb_info: tcbInfo.body,
      tcb_info_signature: tcbInfo.signature,
      qe_identity_issuer_chain: header(qe, "SGX-Enclave-Identity-Issuer-Chain"),
      qe_identity: qeIdentity.body,
      qe_identity_signature: qeIdentity.signature,
    };
  }
}
