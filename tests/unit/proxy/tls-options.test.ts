import type { SecureContext } from "node:tls";
import { describe, expect, it } from "vitest";
import { TicketKeyRing } from "../../../gateway-runtime/proxy/tls-options.js";

/** Stands in for the native context's ticket key hook, the way OpenSSL calls it. */
function hooked(ring: TicketKeyRing) {
  const native = {
    enabled: false,
    enableTicketKeyCallback() {
      this.enabled = true;
    },
    onticketkeycallback: (_name: Buffer, _iv: Buffer, _encrypt: boolean): unknown[] => [],
  };
  expect(ring.attach({ context: native } as unknown as SecureContext)).toBe(true);
  expect(native.enabled).toBe(true);
  return native;
}

describe("TicketKeyRing", () => {
  it("gives every ticket its own IV, and an IV handed out never changes afterwards", () => {
    const native = hooked(new TicketKeyRing());
    const ivs: Buffer[] = [];
    for (let i = 0; i < 600; i++) {
      const [result, hmac, aes, name, iv] = native.onticketkeycallback(
        Buffer.alloc(16),
        Buffer.alloc(16),
        true,
      ) as [number, Buffer, Buffer, Buffer, Buffer];
      expect([result, hmac.length, aes.length, name.length, iv.length]).toEqual([
        1, 16, 16, 16, 16,
      ]);
      ivs.push(iv);
    }
    const seen = ivs.map((iv) => iv.toString("hex"));
    expect(new Set(seen).size).toBe(600); // across refills of the pool
    for (let i = 0; i < 600; i++)
      native.onticketkeycallback(Buffer.alloc(16), Buffer.alloc(16), true);
    expect(ivs.map((iv) => iv.toString("hex"))).toEqual(seen);
  });

  it("decrypts with the current and the previous key and renews; older keys mean a full handshake", () => {
    const ring = new TicketKeyRing();
    const native = hooked(ring);
    const nameNow = () =>
      (
        native.onticketkeycallback(Buffer.alloc(16), Buffer.alloc(16), true) as Buffer[]
      )[3] as Buffer;
    const first = nameNow();
    expect(native.onticketkeycallback(first, Buffer.alloc(16), false)[0]).toBe(2);
    ring.rotate();
    expect(nameNow().equals(first)).toBe(false);
    expect(native.onticketkeycallback(first, Buffer.alloc(16), false)[0]).toBe(2);
    ring.rotate();
    expect(native.onticketkeycallback(first, Buffer.alloc(16), false)[0]).toBe(0);
  });

  it("hands its keys to another ring, whose tickets this one then accepts, and back", () => {
    const owner = new TicketKeyRing();
    owner.rotate(); // a previous key too
    const worker = new TicketKeyRing();
    worker.load(owner.export());
    const a = hooked(owner);
    const b = hooked(worker);
    const issuedByWorker = (
      b.onticketkeycallback(Buffer.alloc(16), Buffer.alloc(16), true) as Buffer[]
    )[3] as Buffer;
    expect(a.onticketkeycallback(issuedByWorker, Buffer.alloc(16), false)[0]).toBe(2);
    const issuedByOwner = (
      a.onticketkeycallback(Buffer.alloc(16), Buffer.alloc(16), true) as Buffer[]
    )[3] as Buffer;
    expect(b.onticketkeycallback(issuedByOwner, Buffer.alloc(16), false)[0]).toBe(2);
    expect(worker.export()).toEqual(owner.export());
  });

  it("refuses keys that are not 16 bytes, naming which", () => {
    const keys = new TicketKeyRing().export();
    expect(() =>
      new TicketKeyRing().load({ ...keys, current: { ...keys.current, aes: "abcd" } }),
    ).toThrow(/current ticket key: aes is not 16 bytes/);
  });
});
