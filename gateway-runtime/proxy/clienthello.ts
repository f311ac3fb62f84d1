/**
 * Pure, incremental reader of a TLS ClientHello, for a proxy that peeks at a socket to route
 * by SNI (DESIGN.md §2). The caller passes every byte received so far and calls again with a
 * longer buffer while the answer is "need-more". The handshake message may be split across
 * any number of TLS records and any number of reads; it is reassembled from consecutive
 * handshake records. Nothing is read past the input, and a verdict is given as soon as the
 * bytes present prove the input can never become a valid ClientHello.
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
const HOST_CHARS = /^[a-z0-9_-]{1,63}$/;

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
      const body = Buffer.concat(parts, need).subarray(HANDSHAKE_HEADER);
      return { status: "done", hello: { ...readBody(body), recordBytes: pos } };
    }
  }
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

/** Bounds-checked reader over one byte vector; every overrun is E_HELLO_MALFORMED. */
class Reader {
  private pos = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {}

  get left(): number {
    return this.bytes.length - this.pos;
  }

  take(n: number, what: string): Uint8Array {
    if (n > this.left) fail("E_HELLO_MALFORMED", `${what} runs past ${this.what}`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  uint(size: 1 | 2, what: string): number {
    const b = this.take(size, what);
    return size === 1 ? (b[0] ?? 0) : ((b[0] ?? 0) << 8) | (b[1] ?? 0);
  }

  /** A vector with a `size`-byte length prefix, as its own Reader. */
  vector(size: 1 | 2, what: string): Reader {
    return new Reader(this.take(this.uint(size, `${what} length`), what), what);
  }

  rest(): Uint8Array {
    return this.take(this.left, this.what);
  }

  end(): void {
    if (this.left !== 0) fail("E_HELLO_MALFORMED", `${this.left} stray bytes after ${this.what}`);
  }
}

function readBody(body: Uint8Array): Omit<ClientHello, "recordBytes"> {
  const r = new Reader(body, "ClientHello");
  const version = r.take(2, "legacy_version");
  if (version[0] !== 3) fail("E_HELLO_MALFORMED", `version ${version[0]}.${version[1]}`);
  r.take(32, "random");
  if (r.vector(1, "legacy_session_id").left > 32) fail("E_HELLO_MALFORMED", "session id over 32");
  const suites = r.vector(2, "cipher_suites").left;
  if (suites === 0 || suites % 2 !== 0) fail("E_HELLO_MALFORMED", "cipher_suites length");
  if (r.vector(1, "compression_methods").left === 0) fail("E_HELLO_MALFORMED", "no compression");
  if (r.left === 0) fail("E_HELLO_NO_SNI", "ClientHello has no extensions");
  const exts = r.vector(2, "extensions");
  r.end();

  const seen = new Set<number>();
  let serverName: string | undefined;
  let alpn: string[] = [];
  while (exts.left > 0) {
    const type = exts.uint(2, "extension type");
    const data = exts.vector(2, `extension ${type}`);
    if (seen.has(type)) fail("E_HELLO_MALFORMED", `duplicate extension ${type}`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) serverName = readServerName(data);
    else if (type === EXT_ALPN) alpn = readAlpn(data);
  }
  if (serverName === undefined) fail("E_HELLO_NO_SNI", "no server_name extension");
  return { serverName, alpn };
}

function readServerName(data: Reader): string {
  const list = data.vector(2, "server_name_list");
  data.end();
  if (list.left === 0) fail("E_HELLO_MALFORMED", "empty server_name_list");
  let host: Uint8Array | undefined;
  while (list.left > 0) {
    const nameType = list.uint(1, "name_type");
    const name = list.vector(2, "server name").rest();
    if (nameType !== 0) continue; // none other is defined; skipped, read as u16-length opaque
    if (host !== undefined) fail("E_HELLO_MALFORMED", "two host_name entries");
    host = name;
  }
  if (host === undefined) fail("E_HELLO_NO_SNI", "server_name has no host_name entry");
  return normalizeHostName(host);
}

/** Lowercase, drop one trailing dot, allow letters, digits, '-', '_' in labels of 1-63. */
function normalizeHostName(raw: Uint8Array): string {
  // 254 = 253 characters plus the trailing dot; checked before decoding a long name.
  if (raw.length > 254) fail("E_HELLO_BAD_SNI", `host_name of ${raw.length} bytes`);
  let name = Buffer.from(raw).toString("latin1").toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) fail("E_HELLO_BAD_SNI", "host_name length");
  for (const label of name.split(".")) {
    if (!HOST_CHARS.test(label)) fail("E_HELLO_BAD_SNI", `bad host_name ${JSON.stringify(name)}`);
  }
  return name;
}

function readAlpn(data: Reader): string[] {
  const list = data.vector(2, "protocol_name_list");
  data.end();
  if (list.left === 0) fail("E_HELLO_MALFORMED", "empty ALPN protocol_name_list");
  const names: string[] = [];
  while (list.left > 0) {
    const name = list.vector(1, "protocol_name");
    if (name.left === 0) fail("E_HELLO_MALFORMED", "empty ALPN protocol name");
    names.push(Buffer.from(name.rest()).toString("latin1"));
  }
  return names;
}
