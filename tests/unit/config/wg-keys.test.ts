import { describe, expect, it } from "vitest";
import {
  decodeWgKey,
  generateWgKeyPair,
  wgPublicKey,
} from "../../../gateway-runtime/keys/wireguard.js";

const hexToB64 = (hex: string) => Buffer.from(hex, "hex").toString("base64");

describe("WireGuard keys", () => {
  it("derives the public key of RFC 7748's test vector", () => {
    const alicePrivate = hexToB64(
      "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    );
    const alicePublic = hexToB64(
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    );
    expect(wgPublicKey(alicePrivate)).toBe(alicePublic);
  });

  it("generates pairs whose public key matches the private key", () => {
    const { privateKey, publicKey } = generateWgKeyPair();
    expect(decodeWgKey(privateKey)?.length).toBe(32);
    expect(wgPublicKey(privateKey)).toBe(publicKey);
  });

  it.each(["", "gateway_private_key", "AAAA", `${"A".repeat(44)}`, `${"A".repeat(42)}==`])(
    "rejects %j",
    (text) => {
      expect(decodeWgKey(text)).toBeUndefined();
      expect(wgPublicKey(text)).toBeUndefined();
    },
  );
});

describe("WireGuard key spelling", () => {
  it("accepts only canonical base64, so one key has one spelling", () => {
    const { publicKey } = generateWgKeyPair();
    const raw = Buffer.from(publicKey, "base64");
    raw[31] = (raw[31] ?? 0) & 0xf0; // last char then carries 2 unused bits we can set
    const canonical = raw.toString("base64");
    const last = canonical.at(-2) ?? "A";
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const sibling = `${canonical.slice(0, -2)}${alphabet[alphabet.indexOf(last) + 1]}=`;
    expect(Buffer.from(sibling, "base64").equals(raw)).toBe(true);
    expect(decodeWgKey(canonical)?.equals(raw)).toBe(true);
    expect(decodeWgKey(sibling)).toBeUndefined();
  });
});
