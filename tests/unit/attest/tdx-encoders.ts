/**
 * Encoders for TDX evidence as dstack CVMs put it in certificates: the JSON event log (.2), the
 * SCALE `VersionedAttestation::V0` (.8), and a quote with TD report fields patched.
 */
import { createHash } from "node:crypto";

export interface TestEvent {
  readonly event: string;
  readonly payload: Buffer;
}

/** The JSON TDX event log (`Vec<TdxEvent>`), runtime events only, V1 digests. */
export function eventLogJson(events: readonly TestEvent[]): string {
  const type = Buffer.alloc(4);
  type.writeUInt32LE(0x08000001);
  return JSON.stringify(
    events.map((e) => ({
      imr: 3,
      event_type: 0x08000001,
      digest: createHash("sha384")
        .update(Buffer.concat([type, Buffer.from(`:${e.event}:`), e.payload]))
        .digest("hex"),
      event: e.event,
      event_payload: e.payload.toString("hex"),
    })),
  );
}

/** SCALE compact encoding of a length. */
export function compact(n: number): Buffer {
  if (n < 64) return Buffer.from([n << 2]);
  if (n < 0x4000) return Buffer.from([((n << 2) | 1) & 0xff, n >> 6]);
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n * 4 + 2);
  return b;
}

const scaleBytes = (b: Uint8Array) => Buffer.concat([compact(b.length), b]);

/** `VersionedAttestation::V0` of a `DstackTdx` attestation (stripped: empty event_log). */
export function scaleAttestation(a: {
  quote: Buffer;
  runtimeEvents: readonly TestEvent[];
  reportData: Buffer;
  config?: string;
}): Buffer {
  return Buffer.concat([
    Buffer.from([0x00, 0x00]),
    scaleBytes(a.quote),
    compact(0),
    compact(a.runtimeEvents.length),
    ...a.runtimeEvents.flatMap((e) => [scaleBytes(Buffer.from(e.event)), scaleBytes(e.payload)]),
    a.reportData,
    scaleBytes(Buffer.from(a.config ?? "")),
  ]);
}

/** A copy of a v4 TDX quote with TD report fields overwritten (its signature no longer holds). */
export function patchQuote(quote: Buffer, fields: { reportData?: Buffer; rtMr3?: Buffer }): Buffer {
  const out = Buffer.from(quote);
  if (out.readUInt16LE(0) !== 4) throw new Error("patchQuote: v4 quotes only");
  fields.rtMr3?.copy(out, 48 + 472);
  fields.reportData?.copy(out, 48 + 520);
  return out;
}
