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
