import { describe, expect, it } from "vitest";
import {
  backoffDelay,
  DEFAULT_BACKOFF,
  expiryWarningDue,
  renewalReason,
} from "../../../gateway-runtime/certs/schedule.js";
import type { CertificateInfo } from "../../../gateway-runtime/certs/verify.js";

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const NOW = Date.parse("2026-03-01T00:00:00Z");
const NAMES = ["*.app.test.example", "app.test.example"];

const cert = (daysLeft: number, names = NAMES): CertificateInfo => ({
  serial: "01",
  notBefore: new Date(NOW - DAY),
  notAfter: new Date(NOW + daysLeft * DAY),
  names,
  issuer: "CN=test",
  fingerprint256: "",
});

describe("backoffDelay", () => {
  it.each([
    [0, 0],
    [1, MIN],
    [2, 2 * MIN],
    [3, 4 * MIN],
    [5, 16 * MIN],
    [6, 32 * MIN],
    [7, 60 * MIN],
    [50, 60 * MIN],
    [10_000, 60 * MIN],
  ])("after %i failures waits %i ms", (failures, delay) => {
    expect(backoffDelay(failures, DEFAULT_BACKOFF)).toBe(delay);
  });

  it("follows a custom policy", () => {
    const policy = { initialMs: 100, maxMs: 250 };
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, policy))).toEqual([100, 200, 250, 250]);
  });
});

describe("renewalReason", () => {
  it.each([
    ["no certificate", undefined, "missing"],
    ["a certificate far from expiry", cert(60), "none"],
    ["a certificate exactly at the window", cert(10), "expiring"],
    ["a certificate inside the window", cert(3), "expiring"],
    ["an expired certificate", cert(-1), "expiring"],
    ["a certificate without the apex", cert(60, ["*.app.test.example"]), "names"],
    ["a certificate for other names", cert(60, ["*.other.example", "other.example"]), "names"],
  ] as const)("%s -> %s", (_what, info, reason) => {
    expect(renewalReason(info, NAMES, NOW, 10 * DAY)).toBe(reason);
  });
});

describe("expiryWarningDue", () => {
  const in6days = new Date(NOW + 6 * DAY);
  it.each([
    ["more than 7 days left", new Date(NOW + 8 * DAY), undefined, false],
    ["inside 7 days, never warned", in6days, undefined, true],
    ["inside 7 days, warned an hour ago", in6days, NOW - 60 * MIN, false],
    ["inside 7 days, warned a day ago", in6days, NOW - DAY, true],
    ["already expired", new Date(NOW - DAY), NOW - 2 * DAY, true],
  ] as const)("%s -> %s", (_what, notAfter, last, due) => {
    expect(expiryWarningDue(notAfter, NOW, last)).toBe(due);
  });
});
