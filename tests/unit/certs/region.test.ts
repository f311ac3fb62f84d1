/**
 * The region's shared certificate (certs/region.ts) on an in-memory register and a real work
 * directory: what is newer, what is refused, and sync taking or publishing.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { lockTtlSeconds } from "../../../gateway-runtime/certs/cluster/index.js";
import type { CertError } from "../../../gateway-runtime/certs/errors.js";
import {
  checkRegionPair,
  decodePair,
  encodePair,
  shouldPublish,
  shouldTake,
  RegionCertificate,
  type SharedRegister,
} from "../../../gateway-runtime/certs/region.js";
import type { RegisterValue } from "../../../gateway-runtime/certs/register.js";
import { CertStore } from "../../../gateway-runtime/certs/store.js";
import type { CertificateInfo } from "../../../gateway-runtime/certs/verify.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { createCa, issueLeaf, TEST_SANS } from "../../../testkit/certs.js";

const ca = createCa();
const dir = mkdtempSync(join(tmpdir(), "gw-region-"));
afterAll(() => {
  ca.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const NAMES = [...TEST_SANS];
const pairOf = (days: number) => {
  const leaf = issueLeaf(ca, { days });
  return { certPem: `${leaf.certPem}${ca.certPem}`, keyPem: leaf.keyPem, serial: leaf.serial };
};
const short = pairOf(2);
const long = pairOf(5);

const info = (notAfter: number, notBefore = 0): CertificateInfo => ({
  serial: "01",
  notBefore: new Date(notBefore),
  notAfter: new Date(notAfter),
  names: NAMES,
  issuer: "x",
  fingerprint256: "x",
});

/** A register in memory, with the watch fed by every write. */
class MemoryRegister implements SharedRegister {
  readonly name = "memory";
  value: RegisterValue | undefined;
  readonly #watchers = new Set<(text: string) => void>();
  async read() {
    return this.value;
  }
  async write(text: string, version: number) {
    if ((this.value?.version ?? 0) !== version) return false;
    this.value = { text, version: version + 1 };
    for (const w of this.#watchers) w(text);
    return true;
  }
  async watch(fn: (text: string) => void) {
    this.#watchers.add(fn);
    return async () => {
      this.#watchers.delete(fn);
    };
  }
}

let hostNo = 0;
function host(register: SharedRegister) {
  const store = new CertStore(join(dir, `host${hostNo++}`));
  const installed: string[] = [];
  const region = new RegionCertificate({
    register,
    store,
    names: NAMES,
    node: `h${hostNo}`,
    keepArchives: 3,
    log: silentLogger(),
    now: Date.now,
    installed: async (i) => {
      installed.push(i.serial);
    },
  });
  return { store, region, installed };
}

describe("shouldTake and shouldPublish", () => {
  it("take the later notAfter, then the later notBefore; on a tie the region's pair", () => {
    expect(shouldTake(info(2), undefined)).toBe(true);
    expect(shouldTake(info(2), info(1))).toBe(true);
    expect(shouldTake(info(1), info(2, -5))).toBe(false);
    expect(shouldTake(info(2, 1), info(2, 0))).toBe(true);
    expect(shouldTake(info(2, 0), info(2, 0))).toBe(false); // the same certificate
    expect(shouldTake({ ...info(2, 0), fingerprint256: "y" }, info(2, 0))).toBe(true);
  });

  it("publish only a newer pair, or on a tie one fresh from the CA", () => {
    expect(shouldPublish(info(2), undefined, false)).toBe(true);
    expect(shouldPublish(info(2), info(1), false)).toBe(true);
    expect(shouldPublish(info(1), info(2), true)).toBe(false);
    const tie = { ...info(2, 0), fingerprint256: "y" };
    expect(shouldPublish(tie, info(2, 0), false)).toBe(false);
    expect(shouldPublish(tie, info(2, 0), true)).toBe(true);
    expect(shouldPublish(info(2, 0), info(2, 0), true)).toBe(false);
  });
});

describe("checkRegionPair and decodePair", () => {
  const refused = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      expect((e as CertError).code).toBe("E_CERT_INVALID");
      return (e as Error).message;
    }
    throw new Error("expected a refusal");
  };

  it("accepts a chained pair for the names", () => {
    expect(checkRegionPair(short, NAMES, Date.now()).serial).toBe(short.serial.toUpperCase());
  });

  it("refuses a key of another certificate, a leaf alone, other names, an expired one", () => {
    const now = Date.now();
    expect(refused(() => checkRegionPair({ ...short, keyPem: long.keyPem }, NAMES, now))).toMatch(
      /does not match/,
    );
    const leaf = issueLeaf(ca);
    expect(refused(() => checkRegionPair(leaf, NAMES, now))).toMatch(/no issuer/);
    expect(refused(() => checkRegionPair(short, ["other.example"], now))).toMatch(/cover/);
    const old = pairOf(-1);
    expect(refused(() => checkRegionPair(old, NAMES, now))).toMatch(/expired/);
  });

  it("round-trips a pair and refuses text that is not one", () => {
    const pair = { certPem: "c", keyPem: "k", node: "a", publishedAt: 5 };
    expect(decodePair(encodePair(pair))).toEqual(pair);
    expect(refused(() => decodePair("{not json"))).toMatch(/not JSON/);
    expect(refused(() => decodePair('{"certPem":"c"}'))).toMatch(/lacks/);
  });

  it("gives a region lock a TTL of three request timeouts, at least 2 s", () => {
    expect(lockTtlSeconds(5000)).toBe(15);
    expect(lockTtlSeconds(1000)).toBe(3);
    expect(lockTtlSeconds(100)).toBe(2);
  });
});

describe("RegionCertificate", () => {
  it("publishes the live pair when the region has none, and a newer one over an older", async () => {
    const register = new MemoryRegister();
    const a = host(register);
    await a.store.init();
    await a.region.sync(); // nothing live, nothing published
    expect(register.value).toBeUndefined();
    await a.store.install(short.certPem, short.keyPem, Date.now());
    await a.region.sync();
    expect(decodePair(register.value?.text ?? "")).toMatchObject({
      certPem: short.certPem,
      node: "h1",
    });
    await a.store.install(long.certPem, long.keyPem, Date.now());
    await a.region.publish();
    expect(decodePair(register.value?.text ?? "").certPem).toBe(long.certPem);
    expect(a.installed).toEqual([]);
  });

  it("takes a newer pair (sync and watch), keeps its own over an older or a refused one", async () => {
    const register = new MemoryRegister();
    const a = host(register);
    await a.store.init();
    await a.store.install(short.certPem, short.keyPem, Date.now());
    await register.write(encodePair(long), 0);
    await a.region.sync();
    expect(a.installed).toEqual([long.serial.toUpperCase()]);
    const live = await a.store.readLive();
    expect(live && "certPem" in live && live.certPem).toBe(long.certPem);

    await a.region.follow();
    await register.write(encodePair(short), 1); // older: ignored
    await register.write(encodePair({ ...pairOf(9), keyPem: short.keyPem }), 2); // refused
    await register.write("garbage", 3);
    const newest = pairOf(10);
    await register.write(encodePair(newest), 4);
    await a.region.close();
    expect(a.installed).toEqual([long.serial, newest.serial].map((s) => s.toUpperCase()));
    // A refused value in the register is replaced by this host's valid pair at the next sync.
    await register.write("garbage", 5);
    await a.region.sync();
    expect(decodePair(register.value?.text ?? "").certPem).toBe(newest.certPem);
  });
});
