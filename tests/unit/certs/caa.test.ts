import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  caaEquivalent,
  caaRecords,
  caaUpToDate,
  caaValue,
  caIdentifier,
  desiredCaa,
  parseIssueValue,
} from "../../../gateway-runtime/certs/caa.js";

const ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/123456789";

describe("caaRecords", () => {
  it("pins issue and issuewild to the CA, the account and dns-01 (RFC 8657)", () => {
    const value = `letsencrypt.org; accounturi=${ACCOUNT}; validationmethods=dns-01`;
    expect(caaRecords("letsencrypt.org", ACCOUNT)).toEqual([
      { flags: 0, tag: "issue", value },
      { flags: 0, tag: "issuewild", value },
    ]);
  });

  it.each([
    ["a CA name with a space", "lets encrypt.org", ACCOUNT],
    ["a CA name with a semicolon", "le.org;", ACCOUNT],
    ["an empty CA name", "", ACCOUNT],
    ["an account URL with a semicolon", "letsencrypt.org", `${ACCOUNT};x=1`],
    ["an account URL with a space", "letsencrypt.org", `${ACCOUNT} x`],
    ["an account that is not a URL", "letsencrypt.org", "acct-123"],
  ])("rejects %s", (_what, ca, account) => {
    expect(() => caaRecords(ca, account)).toThrow(RangeError);
  });

  it("builds values whose parameters parse back to the inputs", () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
    fc.assert(
      fc.property(fc.array(label, { minLength: 1, maxLength: 4 }), fc.webUrl(), (labels, url) => {
        fc.pre(!/[;\s]/.test(url));
        const ca = labels.join(".");
        const parsed = parseIssueValue(caaValue(ca, url));
        expect(parsed?.issuer).toBe(ca);
        expect(Object.fromEntries(parsed?.params ?? [])).toEqual({
          accounturi: url,
          validationmethods: "dns-01",
        });
      }),
    );
  });
});

describe("caIdentifier", () => {
  it.each([
    [
      "the directory's first caaIdentities",
      { meta: { caaIdentities: ["letsencrypt.org", "x.org"] } },
      "letsencrypt.org",
    ],
    [
      "the ACME host without caaIdentities (pebble)",
      { meta: { termsOfService: "x" } },
      "acme.example.net",
    ],
    ["the ACME host with an empty list", { meta: { caaIdentities: [] } }, "acme.example.net"],
    ["the ACME host without meta", {}, "acme.example.net"],
    ["the ACME host for a non-object", null, "acme.example.net"],
  ])("takes %s", (_what, directory, expected) => {
    expect(caIdentifier(directory, "https://acme.example.net:14000/dir")).toBe(expected);
  });
});

describe("comparing CAA sets", () => {
  const ours = caaRecords("letsencrypt.org", ACCOUNT);
  const reordered = `letsencrypt.org; validationmethods=dns-01; accounturi=${ACCOUNT}`;

  it.each([
    ["parameter order", { flags: 0, tag: "issue", value: reordered }, true],
    ["tag case", { flags: 0, tag: "ISSUE", value: ours[0]?.value ?? "" }, true],
    [
      "spaces around parameters",
      {
        flags: 0,
        tag: "issue",
        value: `letsencrypt.org;accounturi=${ACCOUNT} ;validationmethods=dns-01`,
      },
      true,
    ],
    [
      "another account",
      { flags: 0, tag: "issue", value: reordered.replace("123456789", "1") },
      false,
    ],
    [
      "a missing parameter",
      { flags: 0, tag: "issue", value: `letsencrypt.org; accounturi=${ACCOUNT}` },
      false,
    ],
    ["other flags", { flags: 128, tag: "issue", value: reordered }, false],
    ["another tag", { flags: 0, tag: "issuewild", value: reordered }, false],
  ])("treats %s as %s", (_what, record, same) => {
    expect(caaEquivalent(ours[0] as (typeof ours)[0], record)).toBe(same);
  });

  it("keeps records with other tags and replaces every issue/issuewild", () => {
    const existing = [
      { flags: 0, tag: "issue", value: "otherca.example" },
      { flags: 0, tag: "issuewild", value: ";" },
      { flags: 0, tag: "iodef", value: "mailto:sec@app.test.example" },
    ];
    expect(desiredCaa(existing, ours)).toEqual([...ours, existing[2]]);
  });

  it("sees an unchanged set as up to date, whatever the order", () => {
    const iodef = { flags: 0, tag: "iodef", value: "mailto:sec@app.test.example" };
    const desired = [...ours, iodef];
    expect(caaUpToDate([iodef, ...[...ours].reverse()], desired)).toBe(true);
    expect(caaUpToDate(ours, desired)).toBe(false);
    expect(caaUpToDate([...desired, { flags: 0, tag: "issue", value: "x.example" }], desired)).toBe(
      false,
    );
    expect(caaUpToDate([], ours)).toBe(false);
  });
});
