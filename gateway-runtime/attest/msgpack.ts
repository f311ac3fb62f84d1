/**
 * A bounded MessagePack decoder for the subset dstack's `rmp_serde` writes into the app-info
 * certificate extension: nil, booleans, integers, strings, bin, arrays and maps. Floats and
 * extension types are refused. Pure; every length is checked against the input before use.
 */

export type MsgValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | MsgValue[]
  | Map<MsgValue, MsgValue>;

export class MsgpackError extends Error {
  override name = "MsgpackError";
}

const MAX_DEPTH = 16;

class Reader {
  offset = 0;
  constructor(readonly buf: Uint8Array) {}

  take(n: number): Uint8Array {
    if (n > this.buf.length - this.offset) {
      throw new MsgpackError(`truncated: need ${n} bytes at offset ${this.offset}`);
    }
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  uint(bytes: 1 | 2 | 4 | 8): number | bigint {
    const view = this.take(bytes);
    let n = 0n;
    for (const b of view) n = (n << 8n) | BigInt(b);
    return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }

  int(bytes: 1 | 2 | 4 | 8): number | bigint {
    const raw = this.uint(bytes);
    const n = BigInt(raw);
    const bits = BigInt(bytes * 8);
    const signed = n >= 1n << (bits - 1n) ? n - (1n << bits) : n;
    return signed >= BigInt(Number.MIN_SAFE_INTEGER) && signed <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(signed)
      : signed;
  }

  length(bytes: 1 | 2 | 4): number {
    return this.uint(bytes) as number;
  }
}

function value(r: Reader, depth: number): MsgValue {
  if (depth > MAX_DEPTH) throw new MsgpackError(`nested deeper than ${MAX_DEPTH}`);
  const type = r.take(1)[0] as number;
  if (type <= 0x7f) return type;
  if (type >= 0xe0) return type - 0x100;
  if ((type & 0xf0) === 0x80) return map(r, type & 0x0f, depth);
  if ((type & 0xf0) === 0x90) return array(r, type & 0x0f, depth);
  if ((type & 0xe0) === 0xa0) return text(r, type & 0x1f);
  switch (type) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return new Uint8Array(r.take(r.length(1)));
    case 0xc5:
      return new Uint8Array(r.take(r.length(2)));
    case 0xc6:
      return new Uint8Array(r.take(r.length(4)));
    case 0xcc:
      return r.uint(1);
    case 0xcd:
      return r.uint(2);
    case 0xce:
      return r.uint(4);
    case 0xcf:
      return r.uint(8);
    case 0xd0:
      return r.int(1);
    case 0xd1:
      return r.int(2);
    case 0xd2:
      return r.int(4);
    case 0xd3:
      return r.int(8);
    case 0xd9:
      return text(r, r.length(1));
    case 0xda:
      return text(r, r.length(2));
    case 0xdb:
      return text(r, r.length(4));
    case 0xdc:
      return array(r, r.length(2), depth);
    case 0xdd:
      return array(r, r.length(4), depth);
    case 0xde:
      return map(r, r.length(2), depth);
    case 0xdf:
      return map(r, r.length(4), depth);
    default:
      throw new MsgpackError(`unsupported type byte 0x${type.toString(16)} at ${r.offset - 1}`);
  }
}

function text(r: Reader, n: number): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(r.take(n));
  } catch (cause) {
    if (cause instanceof MsgpackError) throw cause;
    throw new MsgpackError("string is not valid UTF-8");
  }
}

function array(r: Reader, n: number, depth: number): MsgValue[] {
  // Every element takes at least one byte: a bogus count fails before any allocation.
  if (n > r.buf.length - r.offset) throw new MsgpackError(`array of ${n} exceeds the input`);
  const out: MsgValue[] = [];
  for (let k = 0; k < n; k++) out.push(value(r, depth + 1));
  return out;
}

function map(r: Reader, n: number, depth: number): Map<MsgValue, MsgValue> {
  if (2 * n > r.buf.length - r.offset) throw new MsgpackError(`map of ${n} exceeds the input`);
  const out = new Map<MsgValue, MsgValue>();
  for (let k = 0; k < n; k++) {
    const key = value(r, depth + 1);
    if (typeof key === "object" && key !== null) throw new MsgpackError("non-scalar map key");
    if (out.has(key)) throw new MsgpackError(`duplicate map key ${String(key)}`);
    out.set(key, value(r, depth + 1));
  }
  return out;
}

/** Decodes exactly one value that fills `buf`. */
export function decodeMsgpack(buf: Uint8Array): MsgValue {
  const r = new Reader(buf);
  const out = value(r, 0);
  if (r.offset !== buf.length) {
    throw new MsgpackError(`${buf.length - r.offset} trailing bytes`);
  }
  return out;
}
