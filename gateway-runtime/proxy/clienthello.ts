/**
 * Pure, incremental reader of a TLS ClientHello, for a proxy that peeks at a socket to route by
 * SNI (ARCHITECTURE.md "Request path"). The caller passes every byte received so far and calls
 * again with a longer buffer while the answer is "need-more". The handshake message may be split
 * across any number of TLS records and any number of reads; it is reassembled from consecutive
 * handshake records. Nothing is read past the input, and a verdict is given as soon as the bytes
 * present prove the input can never become a valid ClientHello.
 */
import { Buffer } from "node:buffer";
import { GatewayError } from "../errors.js";

/** Reasons, stable because they become metric labels and log fields. */
export const CLIENT_HELLO_ERROR_CODES = [
  "E_HELLO_NOT_TLS", // first byte is no handshake record, and the input is neither HTTP nor SSLv2
  "E_HELLO_HTTP", // a plain HTTP request (http:// spoken to the TLS port)
  "E_HELLO_SSLV2", // an SSL 2.0 style ClientHello header
  "E_HELLO_BAD_RECORD", // bad record version or length, other content type, unaligned end
  "E_HELLO_NOT_CLIENT_HELLO", // the first handshake message is of another type
  "E_HELLO_TOO_LARGE", // body over MAX_HANDSHAKE_BYTES or records over MAX_HELLO_RECORD_BYTES
  "E_HELLO_MALFORMED", // inner length past its container, duplicate extension, bad list
  "E_HELLO_NO_SNI", // no server_name extension, or no host_name in it
  "E_HELLO_BAD_SNI", // host_name is no DNS name of letters, digits, '-', '_' and '.'
] as const;
export type ClientHelloErrorCode = (typeof CLIENT_HELLO_ERROR_CODES)[number];

export class ClientHelloError extends GatewayError<ClientHelloErrorCode> {
  constructor(code: ClientHelloErrorCode, message: string) {
    super(code, message);
    this.name = "ClientHelloError";
  }
}

export interface ClientHello {
  /** host_name of the server_name extension, lowercased, one trailing dot removed. */
  readonly serverName: string;
  /** ALPN protocol names (latin1) in the client's order; empty when ALPN is absent. */
  readonly alpn: readonly string[];
  /** Bytes at the start of the input taken by the records that carried the ClientHello. */
  readonly recordBytes: number;
}

export type ClientHelloResult =
  | { readonly status: "need-more" }
  | { readonly status: "done"; readonly hello: ClientHello };

/** Largest handshake body accepted (the 24-bit length of the ClientHello message). */
export const MAX_HANDSHAKE_BYTES = 16384;
/** Largest TLSPlaintext.fragment (RFC 8446 §5.1). */
export const MAX_RECORD_PAYLOAD = 16384;
/** Cap on the bytes (headers included) of the records that carry one ClientHello. */
export const MAX_HELLO_RECORD_BYTES = 32768;

const CT_HANDSHAKE = 0x16;
const HT_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
const NEED_MORE: ClientHelloResult = Object.freeze({ status: "need-more" });
const HTTP_METHODS = "GET |HEAD |POST |PUT |DELETE |CONNECT |OPTIONS |TRACE |PATCH |PRI * "
  .split("|")
  .map((m) => Buffer.from(m, "latin1"));

function fail(code: ClientHelloErrorCode, message: string): never {
  throw new ClientHelloError(code, message);
}

/** Reads the ClientHello at the start of `buf`; throws ClientHelloError when it cannot be one. */
export function parseClientHello(buf: Uint8Array): ClientHelloResult {
  if (buf.length === 0) return NEED_MORE;
  if (buf[0] !== CT_HANDSHAKE) return rejectNonTls(buf);

  const parts: Uint8Array[] = [];
  const head: number[] = []; // first HANDSHAKE_HEADER bytes of the handshake stream
  let have = 0; // handshake bytes present in the input
  let need = -1; // HANDSHAKE_HEADER + body length, once the header is in
  let pos = 0;
  for (;;) {
    const length = readRecordHeader(buf, pos);
    if (length === undefined) return NEED_MORE;
    const end = pos + RECORD_HEADER + length;
    if (end > MAX_HELLO_RECORD_BYTES) {
      fail("E_HELLO_TOO_LARGE", `ClientHello records exceed ${MAX_HELLO_RECORD_BYTES} bytes`);
    }
    const declared = have + length;
    const part = buf.subarray(pos + RECORD_HEADER, end); // subarray stops at the input's end
    parts.push(part);
    have += part.length;
    for (let i = 0; i < part.length && head.length < HANDSHAKE_HEADER; i++) {
      head.push(part[i] ?? 0);
    }
    if (head.length > 0 && head[0] !== HT_CLIENT_HELLO) {
      fail("E_HELLO_NOT_CLIENT_HELLO", `first handshake message has type ${head[0]}`);
    }
    if (need < 0 && head.length === HANDSHAKE_HEADER) {
      const bodyLength = ((head[1] ?? 0) << 16) | ((head[2] ?? 0) << 8) | (head[3] ?? 0);
      if (bodyLength > MAX_HANDSHAKE_BYTES) fail("E_HELLO_TOO_LARGE", `body of ${bodyLength}`);
      need = HANDSHAKE_HEADER + bodyLength;
    }
    if (need >= 0 && declared > need) {
      fail("E_HELLO_BAD_RECORD", "ClientHello does not end at a record boundary");
    }
    if (end > buf.length) return NEED_MORE;
    pos = end;
    if (have === need) {
      // One record (the usual case): read it in place; several: join them once.
      const joined = parts.length === 1 ? asBuffer(parts[0] as Uint8Array) : Buffer.concat(parts);
      const hello = readBody(joined.subarray(HANDSHAKE_HEADER, need));
      return { status: "done", hello: { ...hello, recordBytes: pos } };
    }
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Validates the record header at `pos` as far as it is present; its length once complete. */
function readRecordHeader(buf: Uint8Array, pos: number): number | undefined {
  const avail = buf.length - pos;
  if (avail <= 0) return undefined;
  if (buf[pos] !== CT_HANDSHAKE) {
    fail("E_HELLO_BAD_RECORD", `record of content type ${buf[pos]} inside the ClientHello`);
  }
  if ((avail >= 2 && buf[pos + 1] !== 3) || (avail >= 3 && (buf[pos + 2] ?? 0) > 4)) {
    fail("E_HELLO_BAD_RECORD", `record version ${buf[pos + 1]}.${buf[pos + 2] ?? "?"}`);
  }
  if (avail < RECORD_HEADER) return undefined;
  const length = ((buf[pos + 3] ?? 0) << 8) | (buf[pos + 4] ?? 0);
  if (length === 0) fail("E_HELLO_BAD_RECORD", "zero-length handshake record");
  if (length > MAX_RECORD_PAYLOAD) fail("E_HELLO_BAD_RECORD", `record length ${length}`);
  return length;
}

/** Names what a non-handshake first byte is; returns NEED_MORE while an HTTP verb may follow. */
function rejectNonTls(buf: Uint8Array): ClientHelloResult {
  const first = buf[0] ?? 0;
  if (first & 0x80) {
    // SSLv2 two-byte header, then msg_type 1 (CLIENT-HELLO).
    if (buf.length < 3) return NEED_MORE;
    if (buf[2] === 1) fail("E_HELLO_SSLV2", "SSL 2.0 ClientHello");
  }
  let maybeHttp = false;
  for (const method of HTTP_METHODS) {
    const n = Math.min(method.length, buf.length);
    if (Buffer.compare(method.subarray(0, n), buf.subarray(0, n)) !== 0) continue;
    if (n === method.length) fail("E_HELLO_HTTP", "plain HTTP request on the TLS port");
    maybeHttp = true;
  }
  if (maybeHttp) return NEED_MORE;
  return fail("E_HELLO_NOT_TLS", `first byte 0x${first.toString(16)} is not a TLS handshake`);
}

/**
 * Bounds-checked reader over one byte vector, `bytes[start, end)`; every overrun is
 * E_HELLO_MALFORMED. Reads in place: no copies and no subarrays, since this runs per
 * connection; the labels become message text only when something fails.
 */
class Reader {
  #pos: number;
  readonly #end: number;
  readonly #bytes: Buffer;
  readonly #what: string;

  constructor(bytes: Buffer, start: number, end: number, what: string) {
    this.#bytes = bytes;
    this.#pos = start;
    this.#end = end;
    this.#what = what;
  }

  get left(): number {
    return this.#end - this.#pos;
  }

  #need(n: number, what: string): number {
    if (n > this.left) fail("E_HELLO_MALFORMED", `${what} runs past ${this.#what}`);
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  skip(n: number, what: string): void {
    this.#need(n, what);
  }

  uint(size: 1 | 2, what: string): number {
    const at = this.#need(size, what);
    const b = this.#bytes;
    return size === 1 ? (b[at] ?? 0) : ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
  }

  /** A vector with a `size`-byte length prefix, as its own Reader. */
  vector(size: 1 | 2, what: string): Reader {
    return this.vectorAfter(this.uint(size, `${what} length`), what);
  }

  /** The next `n` bytes as their own Reader (their length prefix was read already). */
  vectorAfter(n: number, what: string): Reader {
    const at = this.#need(n, what);
    return new Reader(this.#bytes, at, at + n, what);
  }

  /** Everything left, as latin1 text (names in a ClientHello are ASCII). */
  restText(): string {
    const at = this.#need(this.left, this.#what);
    return this.#bytes.toString("latin1", at, this.#end);
  }

  end(): void {
    if (this.left !== 0) fail("E_HELLO_MALFORMED", `${this.left} stray bytes after ${this.#what}`);
  }
}

/** Which extension types were seen: bits for types below 64 (the common ones), a set above. */
class DuplicateCheck {
  #low = 0;
  #high = 0;
  #rest: Set<number> | undefined;

  /** Records `type`; true when it was recorded before. */
  twice(type: number): boolean {
    if (type < 32) {
      const bit = 1 << type;
      const seen = (this.#low & bit) !== 0;
      this.#low |= bit;
      return seen;
    }
    if (type < 64) {
      const bit = 1 << (type - 32);
      const seen = (this.#high & bit) !== 0;
      this.#high |= bit;
      return seen;
    }
    this.#rest ??= new Set();
    const seen = this.#rest.has(type);
    this.#rest.add(type);
    return seen;
  }
}

function readBody(body: Buffer): Omit<ClientHello, "recordBytes"> {
  const r = new Reader(body, 0, body.length, "ClientHello");
  const major = r.uint(1, "legacy_version");
  const minor = r.uint(1, "legacy_version");
  if (major !== 3) fail("E_HELLO_MALFORMED", `version ${major}.${minor}`);
  r.skip(32, "random");
  if (r.vector(1, "legacy_session_id").left > 32) fail("E_HELLO_MALFORMED", "session id over 32");
  const suites = r.vector(2, "cipher_suites").left;
  if (suites === 0 || suites % 2 !== 0) fail("E_HELLO_MALFORMED", "cipher_suites length");
  if (r.vector(1, "compression_methods").left === 0) fail("E_HELLO_MALFORMED", "no compression");
  if (r.left === 0) fail("E_HELLO_NO_SNI", "ClientHello has no extensions");
  const exts = r.vector(2, "extensions");
  r.end();

  const seen = new DuplicateCheck();
  let serverName: string | undefined;
  let alpn: string[] = [];
  while (exts.left > 0) {
    const type = exts.uint(2, "extension type");
    const length = exts.uint(2, "extension length");
    if (length > exts.left) fail("E_HELLO_MALFORMED", `extension ${type} runs past extensions`);
    if (seen.twice(type)) fail("E_HELLO_MALFORMED", `duplicate extension ${type}`);
    if (type === EXT_SERVER_NAME || type === EXT_ALPN) {
      const data = exts.vectorAfter(length, type === EXT_SERVER_NAME ? "server_name" : "ALPN");
      if (type === EXT_SERVER_NAME) serverName = readServerName(data);
      else alpn = readAlpn(data);
    } else {
      exts.skip(length, "extension data");
    }
  }
  if (serverName === undefined) fail("E_HELLO_NO_SNI", "no server_name extension");
  return { serverName, alpn };
}

function readServerName(data: Reader): string {
  const list = data.vector(2, "server_name_list");
  data.end();
  if (list.left === 0) fail("E_HELLO_MALFORMED", "empty server_name_list");
  let host: string | undefined;
  while (list.left > 0) {
    const nameType = list.uint(1, "name_type");
    const name = list.vector(2, "server name");
    if (nameType !== 0) continue; // none other is defined; skipped, read as u16-length opaque
    if (host !== undefined) fail("E_HELLO_MALFORMED", "two host_name entries");
    // 254 = 253 characters plus the trailing dot; checked before decoding a long name.
    if (name.left > 254) fail("E_HELLO_BAD_SNI", `host_name of ${name.left} bytes`);
    host = name.restText();
  }
  if (host === undefined) fail("E_HELLO_NO_SNI", "server_name has no host_name entry");
  return normalizeHostName(host);
}

/**
 * Lowercase, drop one trailing dot, allow letters, digits, '-', '_' in labels of 1-63
 * characters, 253 in all. One pass over the characters (no split, no regex).
 */
function normalizeHostName(raw: string): string {
  const name = raw.endsWith(".") ? raw.slice(0, -1) : raw;
  if (name.length === 0 || name.length > 253) fail("E_HELLO_BAD_SNI", "host_name length");
  let label = 0;
  let upper = false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 46) {
      // '.'
      if (label === 0) badHost(name);
      label = 0;
      continue;
    }
    if (c >= 65 && c <= 90)
      upper = true; // A-Z
    else if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95)) {
      badHost(name);
    }
    if (++label > 63) badHost(name);
  }
  if (label === 0) badHost(name);
  return upper ? name.toLowerCase() : name;
}

function badHost(name: string): never {
  return fail("E_HELLO_BAD_SNI", `bad host_name ${JSON.stringify(name.toLowerCase())}`);
}

function readAlpn(data: Reader): string[] {
  const list = data.vector(2, "protocol_name_list");
  data.end();
  if (list.left === 0) fail("E_HELLO_MALFORMED", "empty ALPN protocol_name_list");
  const names: string[] = [];
  while (list.left > 0) {
    const name = list.vector(1, "protocol_name");
    if (name.left === 0) fail("E_HELLO_MALFORMED", "empty ALPN protocol name");
    names.push(name.restText());
  }
  return names;
}
