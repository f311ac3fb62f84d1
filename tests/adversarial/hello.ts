/**
 * ClientHellos for the adversarial suite: the recorded corpus re-encoded with the SNI the test
 * gateway routes, with the position of every length field known, so mutations can aim at them.
 */
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { parseClientHello } from "../../gateway-runtime/proxy/clienthello.js";
import { compileRouter } from "../../gateway-runtime/proxy/route.js";
import { TEST_DOMAIN } from "../../testkit/certs.js";

const fixtures = new URL("../fixtures/clienthello/", import.meta.url);

interface Recorded {
  readonly file: string;
  readonly serverName?: string;
  readonly records: number;
}

/** A length field, as an offset into the handshake message (not the record stream). */
export interface LengthField {
  readonly name: string;
  readonly at: number;
  readonly size: 1 | 2 | 3;
}

/** One ClientHello ready to send: its record stream and where its fields are. */
export interface Hello {
  readonly fixture: string;
  /** The handshake message (type, 24-bit length, body). */
  readonly message: Buffer;
  /** Payload bytes per record (the recording's own fragment size). */
  readonly fragment: number;
  readonly lengths: readonly LengthField[];
}

/** The handshake message carried by a recording's records. */
function handshakeOf(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let pos = 0; pos < bytes.length; pos += 5 + bytes.readUInt16BE(pos + 3)) {
    parts.push(bytes.subarray(pos + 5, pos + 5 + bytes.readUInt16BE(pos + 3)));
  }
  return Buffer.concat(parts);
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);

/**
 * Re-encodes a recorded handshake message with `serverName` as its SNI, and optionally an
 * extra extension of `padding` bytes (type 0xfe0d, unknown to every parser) before the others.
 */
export function rewrite(message: Buffer, serverName: string, padding?: number): Buffer {
  let p = 4 + 2 + 32; // type, length, version, random
  p += 1 + (message[p] ?? 0); // session id
  p += 2 + message.readUInt16BE(p); // cipher suites
  p += 1 + (message[p] ?? 0); // compression methods
  const prefix = message.subarray(4, p);
  const end = p + 2 + message.readUInt16BE(p);
  const exts: Buffer[] = [];
  if (padding !== undefined) exts.push(u16(0xfe0d), u16(padding), Buffer.alloc(padding, 0x5a));
  for (let q = p + 2; q < end; ) {
    const type = message.readUInt16BE(q);
    const length = message.readUInt16BE(q + 2);
    if (type === 0) {
      const name = Buffer.from(serverName, "latin1");
      const list = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
      exts.push(u16(0), u16(list.length + 2), u16(list.length), list);
    } else {
      exts.push(message.subarray(q, q + 4 + length));
    }
    q += 4 + length;
  }
  const extensions = Buffer.concat(exts);
  const body = Buffer.concat([prefix, u16(extensions.length), extensions]);
  return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
}

/** Where the length fields of a message written by `rewrite` are. */
function lengthFields(message: Buffer): LengthField[] {
  let p = 4 + 2 + 32;
  p += 1 + (message[p] ?? 0);
  p += 2 + message.readUInt16BE(p);
  p += 1 + (message[p] ?? 0);
  const fields: LengthField[] = [
    { name: "handshake", at: 1, size: 3 },
    { name: "extensions", at: p, size: 2 },
  ];
  const end = p + 2 + message.readUInt16BE(p);
  for (let q = p + 2; q < end; q += 4 + message.readUInt16BE(q + 2)) {
    if (message.readUInt16BE(q) === 0) {
      fields.push({ name: "sni extension", at: q + 2, size: 2 });
      fields.push({ name: "sni list", at: q + 4, size: 2 });
      fields.push({ name: "sni name", at: q + 7, size: 2 });
    } else if (message.readUInt16BE(q) === 0xfe0d) {
      fields.push({ name: "padding extension", at: q + 2, size: 2 });
    }
  }
  return fields;
}

/** The recorded hellos that carry an SNI, re-encoded for `serverName`. */
export function corpus(serverName: string): Hello[] {
  const index = JSON.parse(readFileSync(new URL("index.json", fixtures), "utf8")) as Recorded[];
  return index
    .filter((e) => e.serverName !== undefined)
    .map((e) => {
      const bytes = readFileSync(new URL(e.file, fixtures));
      const message = rewrite(handshakeOf(bytes), serverName);
      const fragment = e.records > 1 ? bytes.readUInt16BE(3) : 16384;
      return { fixture: e.file, message, fragment, lengths: lengthFields(message) };
    });
}

/** The same hello with an extra extension of `padding` bytes. */
export function padded(hello: Hello, serverName: string, padding: number): Hello {
  const message = rewrite(hello.message, serverName, padding);
  return {
    ...hello,
    fixture: `${hello.fixture}+pad${padding}`,
    message,
    lengths: lengthFields(message),
  };
}

/** The message cut into TLS handshake records of at most `fragment` payload bytes. */
export function records(message: Buffer, fragment: number, version = 0x0301): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < message.length; at += fragment) {
    const part = message.subarray(at, at + fragment);
    out.push(Buffer.from([0x16, version >> 8, version & 0xff]), u16(part.length), part);
  }
  return Buffer.concat(out);
}

/** Offset in the record stream of byte `at` of the message. */
export function streamOffset(hello: Hello, at: number): number {
  return at + 5 * (Math.floor(at / hello.fragment) + 1);
}

/** The record stream with the message's length field `field` set to `value`. */
export function withLength(hello: Hello, field: LengthField, value: number): Buffer {
  const message = Buffer.from(hello.message);
  for (let i = 0; i < field.size; i++) {
    message[field.at + i] = (value >> (8 * (field.size - 1 - i))) & 0xff;
  }
  return records(message, hello.fragment);
}

/**
 * Writes a 4-byte case number into the hello's random (a passthrough backend reads it back);
 * a stream too short to hold it is returned as it is.
 */
export function stamp(stream: Buffer, hello: Hello, n: number): Buffer {
  const out = Buffer.from(stream);
  const at = streamOffset(hello, 6); // the random's first byte
  if (out.length >= at + 4) out.writeUInt32BE(n, at);
  return out;
}

/** The case number a passthrough backend finds in the first record it received. */
export function stampOf(received: Buffer): number | undefined {
  return received.length >= 15 ? received.readUInt32BE(11) : undefined;
}

const route = compileRouter({ baseDomain: TEST_DOMAIN });

/**
 * Which backend port of `appId` the gateway should dial for `bytes` sent whole and then closed:
 * the ClientHello reader (its own behaviour is pinned by the unit tests) must accept them and
 * the SNI must route to `appId`; undefined otherwise.
 */
export function expectedDial(bytes: Buffer, appId: string): number | undefined {
  try {
    const result = parseClientHello(bytes);
    if (result.status !== "done") return undefined;
    const r = route(result.hello.serverName);
    return r.kind === "app" && r.id === appId ? r.port : undefined;
  } catch {
    return undefined;
  }
}
