/**
 * The attestation extension (1.3.6.1.4.1.62397.1.8) holds dstack's `VersionedAttestation`
 * (dstack-attest `attestation.rs`). A first byte 0x00 is the legacy SCALE form
 * `V0 { attestation: Attestation }`, which dstack writes whenever every runtime event is V1 (the
 * common case); a MessagePack map prefix is the newer `AttestationV1` schema, not decoded here.
 *
 * SCALE layout of `Attestation`: `quote: AttestationQuote` (enum byte; 0 = `DstackTdx(TdxQuote
 * { quote: Vec<u8>, event_log: Vec<TdxEvent> })`), `runtime_events: Vec<RuntimeEvent { event:
 * String, payload: Vec<u8> }>`, `report_data: [u8; 64]`, `config: String`, `report: ()`.
 */
import { attestError } from "../types.js";
import type { RuntimeEvent } from "./events.js";

/** The parts of a TDX attestation that verification needs. */
export interface TdxEvidence {
  readonly quote: Buffer;
  readonly runtimeEvents: readonly RuntimeEvent[];
  /** The report_data the attestation claims (checked against the quote's). */
  readonly reportData: Buffer;
  /** The VM config JSON (may be empty). */
  readonly config: string;
}

const PLATFORMS = [
  "DstackTdx",
  "DstackGcpTdx",
  "DstackNitroEnclave",
  "DstackAmdSevSnp",
  "DstackAwsNitroTpm",
];

class ScaleReader {
  #at = 0;
  constructor(readonly buf: Buffer) {}

  get done(): boolean {
    return this.#at === this.buf.length;
  }

  bytes(n: number, what: string): Buffer {
    if (n > this.buf.length - this.#at) {
      throw attestError("E_ATTEST_BAD_EVIDENCE", `attestation: ${what} runs past the end`);
    }
    const out = this.buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  u8(what: string): number {
    return this.bytes(1, what)[0] as number;
  }

  u32(what: string): number {
    return this.bytes(4, what).readUInt32LE(0);
  }

  /** SCALE compact unsigned integer, as a safe JS number. */
  compact(what: string): number {
    const first = this.u8(what);
    switch (first & 3) {
      case 0:
        return first >>> 2;
      case 1:
        return ((first | (this.u8(what) << 8)) >>> 2) & 0x3fff;
      case 2: {
        const rest = this.bytes(3, what);
        return Math.floor((first + rest.readUIntLE(0, 3) * 256) / 4);
      }
      default: {
        const size = (first >>> 2) + 4;
        const raw = this.bytes(size, what);
        if (size > 6 || raw.readUIntLE(0, size) > Number.MAX_SAFE_INTEGER) {
          throw attestError("E_ATTEST_BAD_EVIDENCE", `attestation: ${what} is too large`);
        }
        return raw.readUIntLE(0, size);
      }
    }
  }

  vecU8(what: string): Buffer {
    return this.bytes(this.compact(what), what);
  }

  string(what: string): string {
    const raw = this.vecU8(what);
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(raw);
    } catch (cause) {
      throw attestError("E_ATTEST_BAD_EVIDENCE", `attestation: ${what} is not UTF-8`, cause);
    }
  }

  /** A `Vec<T>`; the count is bounded by the remaining bytes before anything is read. */
  vec<T>(what: string, item: (k: number) => T): T[] {
    const n = this.compact(what);
    if (n > this.buf.length - this.#at) {
      throw attestError("E_ATTEST_BAD_EVIDENCE", `attestation: ${what} count ${n} is too large`);
    }
    return Array.from({ length: n }, (_, k) => item(k));
  }
}

/** Decodes the attestation extension; throws `E_ATTEST_UNSUPPORTED` for evidence not TDX V0. */
export function decodeVersionedAttestation(raw: Buffer): TdxEvidence {
  const first = raw[0];
  if (first === undefined) throw attestError("E_ATTEST_BAD_EVIDENCE", "attestation is empty");
  if (first !== 0x00) {
    const msgpackMap = (first & 0xf0) === 0x80 || first === 0xde || first === 0xdf;
    throw attestError(
      msgpackMap ? "E_ATTEST_UNSUPPORTED" : "E_ATTEST_BAD_EVIDENCE",
      msgpackMap
        ? "attestation uses dstack's V1 (MessagePack) schema, which this gateway does not decode; use a certificate with the app info extension from the KMS (CA mode)"
        : `attestation has unknown wire format (first byte 0x${first.toString(16)})`,
    );
  }
  const r = new ScaleReader(raw);
  r.u8("version");
  const variant = r.u8("platform");
  if (variant !== 0) {
    throw attestError(
      "E_ATTEST_UNSUPPORTED",
      `attestation platform ${PLATFORMS[variant] ?? `#${variant}`} is not supported; only DstackTdx`,
    );
  }
  const quote = Buffer.from(r.vecU8("quote"));
  // TdxQuote.event_log: boot-time events, stripped for certificates; not needed to verify.
  r.vec("event log", () => {
    r.u32("imr");
    r.u32("event type");
    r.vecU8("digest");
    r.string("event name");
    r.vecU8("event payload");
  });
  const runtimeEvents = r.vec(
    "runtime events",
    (): RuntimeEvent => ({
      event: r.string("runtime event name"),
      payload: Buffer.from(r.vecU8("runtime event payload")),
      version: 1,
    }),
  );
  const reportData = Buffer.from(r.bytes(64, "report data"));
  const config = r.string("config");
  if (!r.done) throw attestError("E_ATTEST_BAD_EVIDENCE", "attestation has trailing bytes");
  return { quote, runtimeEvents, reportData, config };
}
