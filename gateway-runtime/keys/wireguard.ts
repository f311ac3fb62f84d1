import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";

/** WireGuard keys are raw 32-byte X25519 keys in base64. node:crypto speaks DER, so we wrap. */
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519_PREFIX_LENGTH = 12;

export function decodeWgKey(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) return undefined;
  const raw = Buffer.from(text, "base64");
  // Only the canonical spelling: two strings must never name the same key.
  return raw.length === 32 && raw.toString("base64") === text ? raw : undefined;
}

/**
 * The u-coordinates of Curve25519's points of small order (0, 1, the two of order 8, and p - 1,
 * p, p + 1 as 32 little-endian bytes). X25519 with any of them gives a shared secret known in
 * advance, so no peer can ever complete a handshake with such a key; X25519 ignores the top
 * bit, so a key is compared with it cleared.
 */
const LOW_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

/** True for a public key that is a point of small order (with or without the ignored top bit). */
export function isLowOrderWgKey(text: string): boolean {
  const raw = decodeWgKey(text);
  if (!raw) return false;
  const masked = Buffer.from(raw);
  masked[31] = (masked[31] ?? 0) & 0x7f;
  return LOW_ORDER.includes(masked.toString("hex"));
}

export function isWgKey(text: string): boolean {
  return decodeWgKey(text) !== undefined;
}

/** The public key of a base64 private key, or undefined when it is not a WireGuard key. */
export function wgPublicKey(privateKey: string): string | undefined {
  const raw = decodeWgKey(privateKey);
  if (!raw) return undefined;
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_X25519_PREFIX, raw]),
    format: "der",
    type: "pkcs8",
  });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return spki.subarray(SPKI_X25519_PREFIX_LENGTH).toString("base64");
}

export function generateWgKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const priv = privateKey
    .export({ format: "der", type: "pkcs8" })
    .subarray(PKCS8_X25519_PREFIX.length);
  const pub = publicKey.export({ format: "der", type: "spki" }).subarray(SPKI_X25519_PREFIX_LENGTH);
  return { privateKey: priv.toString("base64"), publicKey: pub.toString("base64") };
}
