import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  generateWgKeyPair,
  isLowOrderWgKey,
  isWgKey,
} from "../../../gateway-runtime/keys/wireguard.js";

/** The small-order u-coordinates, little-endian hex (0, 1, order 8 twice, p - 1, p, p + 1). */
const POINTS = [
  "00".repeat(32),
  `01${"00".repeat(31)}`,
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  `ec${"ff".repeat(30)}7f`,
  `ed${"ff".repeat(30)}7f`,
  `ee${"ff".repeat(30)}7f`,
];
const b64 = (hex: string) => Buffer.from(hex, "hex").toString("base64");
/** The same point with the top bit set, which X25519 ignores. */
const topBit = (hex: string) => {
  const raw = Buffer.from(hex, "hex");
  raw[31] = (raw[31] ?? 0) | 0x80;
  return raw.toString("hex");
};

/** X25519 with OpenSSL as the oracle: a small-order point gives an all-zero secret, which OpenSSL refuses. */
function sharedSecretRefused(publicB64: string): boolean {
  const spki = Buffer.concat([
    Buffer.from("302a300506032b656e032100", "hex"),
    Buffer.from(publicB64, "base64"),
  ]);
  const publicKey = createPublicKey({ key: spki, format: "der", type: "spki" });
  const { privateKey } = generateKeyPairSync("x25519");
  try {
    const secret = diffieHellman({
      privateKey: createPrivateKey(privateKey.export({ format: "pem", type: "pkcs8" })),
      publicKey,
    });
    return secret.every((b) => b === 0);
  } catch {
    return true;
  }
}

describe("WireGuard keys that are points of small order", () => {
  it.each(POINTS.flatMap((p) => [p, topBit(p)]))(
    "%s is refused, as OpenSSL's X25519 confirms",
    (hex) => {
      const key = b64(hex);
      expect(isWgKey(key)).toBe(true);
      expect(isLowOrderWgKey(key)).toBe(true);
      expect(sharedSecretRefused(key)).toBe(true);
    },
  );

  it("the keys named in the report: all zeros, AQAA…, 4Ot6fDtB…", () => {
    for (const key of ["A".repeat(43) + "=", `AQ${"A".repeat(41)}=`, b64(POINTS[2] as string)]) {
      expect(isLowOrderWgKey(key)).toBe(true);
    }
    expect(b64(POINTS[2] as string).startsWith("4Ot6fDtB")).toBe(true);
  });

  it("generated keys and random 32 bytes are not (property)", () => {
    expect(isLowOrderWgKey(generateWgKeyPair().publicKey)).toBe(false);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const key = Buffer.from(bytes).toString("base64");
        return isLowOrderWgKey(key) === sharedSecretRefused(key);
      }),
      { numRuns: 300 },
    );
  });
});
