import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  blockedUntil,
  EMPTY_LEDGER,
  HOUR_MS,
  LETS_ENCRYPT_LIMITS,
  Ledger,
  type LedgerData,
  prune,
  WEEK_MS,
} from "../../../gateway-runtime/certs/ledger.js";

const NAMES = ["*.app.test.example", "app.test.example"];
const NOW = Date.parse("2026-03-01T12:00:00Z");
const MIN = 60_000;

const failures = (name: string, minutesAgo: number[]): LedgerData["failures"] =>
  minutesAgo.map((m) => ({ name, at: NOW - m * MIN }));

describe("blockedUntil", () => {
  it("allows an attempt with an empty ledger", () => {
    expect(blockedUntil(EMPTY_LEDGER, NAMES, NOW)).toBeUndefined();
  });

  it("allows four failed validations of a name within the hour", () => {
    const data = { failures: failures("app.test.example", [1, 2, 3, 4]), issued: [] };
    expect(blockedUntil(data, NAMES, NOW)).toBeUndefined();
  });

  it("blocks after five failed validations of a name until the oldest leaves the hour", () => {
    const data = { failures: failures("*.app.test.example", [50, 40, 30, 20, 10]), issued: [] };
    expect(blockedUntil(data, NAMES, NOW)).toEqual({
      until: NOW - 50 * MIN + HOUR_MS,
      reason: "5 failed validations for *.app.test.example within an hour",
    });
  });

  it("ignores failures older than an hour and failures of other names", () => {
    const data = {
      failures: [
        ...failures("app.test.example", [61, 70, 80, 90, 1]),
        ...failures("other.example", [1, 2, 3, 4, 5]),
      ],
      issued: [],
    };
    expect(blockedUntil(data, NAMES, NOW)).toBeUndefined();
  });

  it("blocks the sixth certificate for the same names within a week (duplicate limit)", () => {
    const issued = [6, 5, 4, 3, 2].map((d) => ({
      names: [...NAMES].reverse(),
      at: NOW - d * 24 * 60 * MIN,
    }));
    const block = blockedUntil({ failures: [], issued }, NAMES, NOW);
    expect(block?.until).toBe(NOW - 6 * 24 * 60 * MIN + WEEK_MS);
    expect(block?.reason).toBe("5 certificates for the same names within a week");
  });

  it("blocks at 50 certificates a week for the domain", () => {
    const issued = Array.from({ length: 50 }, (_, i) => ({
      names: [`n${i}.app.test.example`],
      at: NOW - (i + 1) * MIN,
    }));
    const block = blockedUntil({ failures: [], issued }, NAMES, NOW);
    expect(block).toEqual({
      until: NOW - 50 * MIN + WEEK_MS,
      reason: "50 certificates within a week",
    });
  });

  it("never blocks below a limit and always blocks at it (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 59 }), { maxLength: 12 }), (ago) => {
        const data = { failures: failures("app.test.example", ago), issued: [] };
        const block = blockedUntil(data, NAMES, NOW, LETS_ENCRYPT_LIMITS);
        expect(block !== undefined).toBe(ago.length >= 5);
        if (block) {
          expect(block.until).toBeGreaterThan(NOW);
          // At `until` the window holds 4 failures: an attempt is allowed again.
          expect(blockedUntil(data, NAMES, block.until, LETS_ENCRYPT_LIMITS)).toBeUndefined();
        }
      }),
    );
  });

  it("prunes what no limit looks at", () => {
    const data = {
      failures: failures("a", [30, 61]),
      issued: [
        { names: ["a"], at: NOW - WEEK_MS - 1 },
        { names: ["a"], at: NOW - 1 },
      ],
    };
    expect(prune(data, NOW)).toEqual({
      failures: failures("a", [30]),
      issued: [{ names: ["a"], at: NOW - 1 }],
    });
  });
});

describe("Ledger (file)", () => {
  const dir = mkdtempSync(join(tmpdir(), "gw-ledger-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("records failures and issuances across instances, 0600", async () => {
    const path = join(dir, "ledger.json");
    await new Ledger(path).recordFailures(NAMES, NOW);
    await new Ledger(path).recordIssued(NAMES, NOW + 1);
    const data = await new Ledger(path).load();
    expect(data).toEqual({
      failures: NAMES.map((name) => ({ name, at: NOW })),
      issued: [{ names: NAMES, at: NOW + 1 }],
    });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual(data);
  });

  it("reads a missing or corrupt file as empty", async () => {
    expect(await new Ledger(join(dir, "none.json")).load()).toEqual(EMPTY_LEDGER);
    writeFileSync(join(dir, "bad.json"), "{not json");
    expect(await new Ledger(join(dir, "bad.json")).load()).toEqual(EMPTY_LEDGER);
    writeFileSync(
      join(dir, "odd.json"),
      JSON.stringify({ failures: [{ name: 1 }, { name: "a", at: 5 }], issued: "x" }),
    );
    expect(await new Ledger(join(dir, "odd.json")).load()).toEqual({
      failures: [{ name: "a", at: 5 }],
      issued: [],
    });
  });
});
