/**
 * dstack runtime events and the hashes built from them (cc-eventlog `runtime_events.rs`,
 * `tdx.rs`; dstack-attest `QuoteContentType`). Pure functions.
 */
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { attestError } from "../types.js";

/** `DSTACK_RUNTIME_EVENT_TYPE`: the TCG event type of every dstack runtime event (RTMR3). */
export const DSTACK_RUNTIME_EVENT_TYPE = 0x08000001;

export interface RuntimeEvent {
  readonly event: string;
  readonly payload: Buffer;
  /** Digest scheme: 1 (binary pre-image) or 2 (canonical JSON pre-image). */
  readonly version: 1 | 2;
}

/**
 * The bytes hashed into RTMR3 for one event.
 * - V1: `event_type_le || ":" || name || ":" || payload`
 * - V2: RFC 8785 JSON `{"name":…,"payload":"<hex>","type":134217729}`
 */
export function eventPreimage(e: RuntimeEvent): Buffer {
  if (e.version === 2) {
    // JCS orders keys by UTF-16 code units and serializes strings as JSON.stringify does.
    const json = `{"name":${JSON.stringify(e.event)},"payload":"${e.payload.toString("hex")}","type":${DSTACK_RUNTIME_EVENT_TYPE}}`;
    return Buffer.from(json, "utf8");
  }
  const type = Buffer.alloc(4);
  type.writeUInt32LE(DSTACK_RUNTIME_EVENT_TYPE);
  return Buffer.concat([type, Buffer.from(`:${e.event}:`, "utf8"), e.payload]);
}

/** Replays `events` into a SHA-384 register starting from zeros (`replay_events::<Sha384>`). */
export function replayRtmr(events: readonly RuntimeEvent[], toEvent?: string): Buffer {
  let mr = Buffer.alloc(48);
  for (const e of events) {
    const digest = createHash("sha384").update(eventPreimage(e)).digest();
    mr = createHash("sha384").update(mr).update(digest).digest();
    if (toEvent !== undefined && e.event === toEvent) break;
  }
  return mr;
}

/** The payload of the first event `name` before `system-ready` (dstack's `find_event`). */
export function findEventPayload(
  events: readonly RuntimeEvent[],
  name: string,
): Buffer | undefined {
  for (const e of events) {
    if (e.event === "system-ready") break;
    if (e.event === name) return e.payload;
  }
  return undefined;
}

/** Every payload of events `name` before `system-ready`, in order. */
export function findEventPayloads(events: readonly RuntimeEvent[], name: string): Buffer[] {
  const out: Buffer[] = [];
  for (const e of events) {
    if (e.event === "system-ready") break;
    if (e.event === name) out.push(e.payload);
  }
  return out;
}

/** `QuoteContentType::RaTlsCert.to_report_data(spki)`: SHA-512("ratls-cert:" || SPKI DER). */
export function raTlsReportData(spkiDer: Uint8Array): Buffer {
  return createHash("sha512").update("ratls-cert:").update(spkiDer).digest();
}

/** `EVENTLOG_GZIP_MAGIC`, and the bound dstack puts on the decompressed event log. */
const GZIP_MAGIC = Buffer.from("ELGZv1");
const MAX_EVENT_LOG = 16 * 1024;

/** `decompress_ext_value`: the event-log extension may be `ELGZv1` + gzip. */
export function decompressEventLog(raw: Buffer): Buffer {
  if (!raw.subarray(0, GZIP_MAGIC.length).equals(GZIP_MAGIC)) return raw;
  try {
    return gunzipSync(raw.subarray(GZIP_MAGIC.length), { maxOutputLength: MAX_EVENT_LOG });
  } catch (cause) {
    throw attestError(
      "E_ATTEST_BAD_EVIDENCE",
      `event log extension does not decompress within ${MAX_EVENT_LOG} bytes`,
      cause,
    );
  }
}

function hexField(v: unknown, where: string): Buffer {
  if (v === undefined || v === "") return Buffer.alloc(0);
  if (typeof v !== "string" || !/^(0x)?([0-9a-fA-F]{2})*$/.test(v)) {
    throw attestError("E_ATTEST_BAD_EVIDENCE", `event log: ${where} is not hex`);
  }
  return Buffer.from(v.replace(/^0x/, ""), "hex");
}

/**
 * Parses the JSON TDX event log (a list of `TdxEvent`: `imr`, `event_type`, hex `digest`,
 * `event`, hex `event_payload`, optional `version`) and returns its runtime events, as
 * `Attestation::from_tdx_quote` does (every event of type `DSTACK_RUNTIME_EVENT_TYPE`).
 */
export function runtimeEventsFromEventLog(json: Buffer): RuntimeEvent[] {
  let list: unknown;
  try {
    list = JSON.parse(json.toString("utf8"));
  } catch (cause) {
    throw attestError("E_ATTEST_BAD_EVIDENCE", "event log is not JSON", cause);
  }
  if (!Array.isArray(list)) throw attestError("E_ATTEST_BAD_EVIDENCE", "event log is not a list");
  const out: RuntimeEvent[] = [];
  list.forEach((item: unknown, k) => {
    if (typeof item !== "object" || item === null) {
      throw attestError("E_ATTEST_BAD_EVIDENCE", `event log entry ${k} is not an object`);
    }
    const e = item as Record<string, unknown>;
    if (e.event_type !== DSTACK_RUNTIME_EVENT_TYPE) return;
    if (typeof e.event !== "string") {
      throw attestError("E_ATTEST_BAD_EVIDENCE", `event log entry ${k} has no event name`);
    }
    // `EventLogVersion` serializes as the number 1 or 2 and is omitted for 1.
    const version = e.version === undefined || e.version === 1 ? 1 : e.version === 2 ? 2 : 0;
    if (version === 0) {
      throw attestError("E_ATTEST_BAD_EVIDENCE", `event log entry ${k} has unknown version`);
    }
    out.push({ event: e.event, payload: hexField(e.event_payload, `entry ${k} payload`), version });
  });
  return out;
}
