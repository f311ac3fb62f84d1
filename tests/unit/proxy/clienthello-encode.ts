// Test helpers for the ClientHello reader: an encoder that remembers where its length fields
// are, a checker that only accepts results or ClientHelloError, and fast-check generators.
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { expect } from "vitest";
import {
  CLIENT_HELLO_ERROR_CODES,
  ClientHelloError,
  type ClientHelloResult,
  parseClientHello,
} from "../../../gateway-runtime/proxy/clienthello.js";

export const NEED_MORE = { status: "need-more" };

// ---- a small ClientHello encoder that remembers where its length fields are ----

export class Writer {
  readonly out: number[] = [];
  readonly lengths: { at: number; size: 1 | 2 | 3 }[] = [];
  u8(v: number): void {
    this.out.push(v & 0xff);
  }
  u16(v: number): void {
    this.u8(v >> 8);
    this.u8(v);
  }
  raw(bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) this.u8(bytes[i] ?? 0);
  }
  vec(size: 1 | 2 | 3, body: () => void): void {
    const at = this.out.length;
    for (let i = 0; i < size; i++) this.u8(0);
    body();
    const n = this.out.length - at - size;
    for (let i = 0; i < size; i++) this.out[at + i] = (n >> (8 * (size - 1 - i))) & 0xff;
    this.lengths.push({ at, size });
  }
}

export type Ext = readonly [type: number, write: (w: Writer) => void];
export const bytesOf = (s: string | Uint8Array): Uint8Array =>
  typeof s === "string" ? Buffer.from(s, "latin1") : s;
export const ext = (type: number, data: ArrayLike<number>): Ext => [type, (w) => w.raw(data)];
export const sni = (...names: (string | Uint8Array)[]): Ext => [
  0,
  (w) =>
    w.vec(2, () => {
      for (const n of names) {
        w.u8(0);
        w.vec(2, () => w.raw(bytesOf(n)));
      }
    }),
];
export const alpnExt = (names: readonly (string | Uint8Array)[]): Ext => [
  16,
  (w) =>
    w.vec(2, () => {
      for (const n of names) w.vec(1, () => w.raw(bytesOf(n)));
    }),
];

export interface Spec {
  readonly type?: number;
  readonly version?: readonly number[];
  readonly sessionId?: ArrayLike<number>;
  readonly suites?: ArrayLike<number>;
  readonly compression?: ArrayLike<number>;
  readonly extensions?: readonly Ext[] | null;
  readonly trailing?: ArrayLike<number>;
}

/** The handshake message (header included), as a Writer so tests can find its length fields. */
export function message(spec: Spec = {}): Writer {
  const w = new Writer();
  w.u8(spec.type ?? 1);
  w.vec(3, () => {
    w.raw(spec.version ?? [3, 3]);
    w.raw(new Uint8Array(32).fill(7));
    w.vec(1, () => w.raw(spec.sessionId ?? []));
    w.vec(2, () => w.raw(spec.suites ?? [0x13, 0x01, 0xc0, 0x2f]));
    w.vec(1, () => w.raw(spec.compression ?? [0]));
    const exts = spec.extensions === undefined ? [sni("example.com")] : spec.extensions;
    if (exts !== null) {
      w.vec(2, () => {
        for (const [type, data] of exts) {
          w.u16(type);
          w.vec(2, () => data(w));
        }
      });
    }
    w.raw(spec.trailing ?? []);
  });
  return w;
}

/** Wraps a handshake stream in records of the given payload sizes (the rest in 16 KiB ones). */
export function records(msg: ArrayLike<number>, sizes: readonly number[] = [], minor = 1): Buffer {
  const bytes = Buffer.from(Uint8Array.from(msg));
  const out: Buffer[] = [];
  let pos = 0;
  for (let i = 0; pos < bytes.length; i++) {
    const n = Math.min(sizes[i] ?? 16384, 16384, bytes.length - pos);
    out.push(Buffer.from([0x16, 3, minor, n >> 8, n & 0xff]), bytes.subarray(pos, pos + n));
    pos += n;
  }
  return Buffer.concat(out);
}

export const hello = (spec: Spec = {}, sizes: readonly number[] = []): Buffer =>
  records(message(spec).out, sizes);

export function outcome(bytes: Uint8Array): ClientHelloResult | ClientHelloError {
  try {
    const result = parseClientHello(bytes);
    if (result.status === "done") {
      expect(result.hello.recordBytes).toBeGreaterThan(5);
      expect(result.hello.recordBytes).toBeLessThanOrEqual(bytes.length);
    }
    return result;
  } catch (err) {
    if (!(err instanceof ClientHelloError)) throw err;
    expect(CLIENT_HELLO_ERROR_CODES).toContain(err.code);
    return err;
  }
}

export function codeOf(bytes: Uint8Array): string {
  const result = outcome(bytes);
  return result instanceof ClientHelloError ? result.code : result.status;
}

// ---- generators ----

export const labelArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,63}$/);
export const hostArb = fc
  .record({ labels: fc.array(labelArb, { minLength: 1, maxLength: 5 }), dot: fc.boolean() })
  .map(({ labels, dot }) => `${labels.join(".")}${dot ? "." : ""}`)
  .filter((h) => h.replace(/\.$/, "").length <= 253);
export const helloArb = fc
  .record({
    host: hostArb,
    alpn: fc.array(fc.uint8Array({ minLength: 1, maxLength: 255 }), { maxLength: 8 }),
    extras: fc.uniqueArray(
      fc.record({
        type: fc.integer({ min: 1, max: 65535 }).filter((t) => t !== 16 && t !== 21),
        data: fc.uint8Array({ maxLength: 300 }),
      }),
      { selector: (e) => e.type, maxLength: 8 },
    ),
    sessionId: fc.uint8Array({ maxLength: 32 }),
    suites: fc.array(fc.integer({ min: 0, max: 65535 }), { minLength: 1, maxLength: 40 }),
    sniAt: fc.nat(),
    size: fc.integer({ min: 100, max: 16000 }),
  })
  .map((h) => {
    const exts: Ext[] = h.extras.map((e) => ext(e.type, e.data));
    if (h.alpn.length > 0) exts.splice(h.sniAt % 3, 0, alpnExt(h.alpn));
    exts.splice(h.sniAt % (exts.length + 1), 0, sni(h.host));
    const spec = {
      sessionId: h.sessionId,
      suites: h.suites.flatMap((s) => [s >> 8, s & 0xff]),
      extensions: exts,
    };
    const bare = message(spec).out.length - 4;
    if (h.size - bare >= 4) exts.push(ext(21, new Uint8Array(h.size - bare - 4)));
    return {
      msg: message(spec),
      serverName: h.host.toLowerCase().replace(/\.$/, ""),
      alpn: h.alpn.map((a) => Buffer.from(a).toString("latin1")),
    };
  });
export const sizesArb = fc.array(
  fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 16384 })),
  { maxLength: 12 },
);

/** Cut points (strictly inside 0..length) from a list of chunk sizes. */
export function cuts(chunks: readonly number[], length: number): number[] {
  const out: number[] = [];
  let at = 0;
  for (const c of chunks) {
    at += c;
    if (at >= length) break;
    out.push(at);
  }
  return out;
}
