/**
 * Wildcard custom domains (dstack#545): when `<prefix>.<sni>` and the legacy name have no
 * record, `<prefix>-wildcard.<parent>` (the SNI without its first label) is asked.
 */
import { describe, expect, it } from "vitest";
import {
  APP,
  codeOf,
  LEGACY,
  PREFIX,
  useCustomDomainFixture,
} from "../../helpers/custom-domains.js";

const f = useCustomDomainFixture();

/** A fresh parent domain with a wildcard record, so counts never mix between tests. */
function wildcardParent(value = `${APP}:8443`): string {
  const parent = f.domain();
  f.dns.setTxt(`${PREFIX}-wildcard.${parent}`, [value]);
  return parent;
}

describe("wildcard custom domains", () => {
  it("one <prefix>-wildcard record serves every name one label below its parent", async () => {
    const parent = wildcardParent();
    const resolver = f.make();
    expect(await resolver.resolve(`a.${parent}`)).toEqual({ appId: APP, port: 8443 });
    expect(await resolver.resolve(`b.${parent}`)).toEqual({ appId: APP, port: 8443 });
    // the exact names first, then the wildcard: three queries per name
    expect(f.dns.queries(`${PREFIX}.a.${parent}`)).toBe(1);
    expect(f.dns.queries(`${LEGACY}.a.${parent}`)).toBe(1);
    expect(f.dns.queries(`${PREFIX}-wildcard.${parent}`)).toBe(2);
  });

  it("an exact record, current or legacy, overrides the wildcard for its name", async () => {
    const parent = wildcardParent();
    f.dns.setTxt(`${PREFIX}.exact.${parent}`, [`${APP}:1`]);
    f.dns.setTxt(`${LEGACY}.old.${parent}`, [`${APP}:2`]);
    const resolver = f.make();
    expect(await resolver.resolve(`exact.${parent}`)).toEqual({ appId: APP, port: 1 });
    expect(await resolver.resolve(`old.${parent}`)).toEqual({ appId: APP, port: 2 });
    expect(f.dns.queries(`${PREFIX}-wildcard.${parent}`)).toBe(0);
  });

  it("reaches one level only, and not the parent itself", async () => {
    const parent = wildcardParent();
    const resolver = f.make();
    expect(await codeOf(resolver.resolve(`a.b.${parent}`))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries(`${PREFIX}-wildcard.b.${parent}`)).toBe(1);
    expect(await codeOf(resolver.resolve(parent))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries(`${PREFIX}-wildcard.${parent.slice(parent.indexOf(".") + 1)}`)).toBe(1);
    expect(f.dns.queries(`${PREFIX}-wildcard.${parent}`)).toBe(0);
  });

  it("names every name it tried when none has a record", async () => {
    const name = `x.${f.domain()}`;
    const error = await f
      .make()
      .resolve(name)
      .catch((e: Error) => e);
    expect(error).toMatchObject({ code: "E_CUSTOM_NO_TXT" });
    const parent = name.slice(2);
    expect((error as Error).message).toBe(
      `no TXT ${PREFIX}.${name}, ${LEGACY}.${name}, ${PREFIX}-wildcard.${parent}`,
    );
  });

  it("has no legacy-prefix form (dstack has none either)", async () => {
    const parent = f.domain();
    f.dns.setTxt(`${LEGACY}-wildcard.${parent}`, [`${APP}:443`]);
    expect(await codeOf(f.make().resolve(`a.${parent}`))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries(`${LEGACY}-wildcard.${parent}`)).toBe(0);
  });

  it("uses the configured prefix", async () => {
    const parent = f.domain();
    f.dns.setTxt(`_custom-wildcard.${parent}`, [`${APP}:7000`]);
    const resolver = f.make({ prefix: "_custom" });
    expect(await resolver.resolve(`a.${parent}`)).toEqual({ appId: APP, port: 7000 });
  });

  it("is not asked when an exact record is malformed: the error is reported", async () => {
    const parent = wildcardParent();
    f.dns.setTxt(`${PREFIX}.bad.${parent}`, ["garbage"]);
    expect(await codeOf(f.make().resolve(`bad.${parent}`))).toBe("E_CUSTOM_BAD_TXT");
    expect(f.dns.queries(`${PREFIX}-wildcard.${parent}`)).toBe(0);
  });

  it("is not asked when an exact lookup fails", async () => {
    const parent = wildcardParent();
    f.dns.setMode("servfail");
    expect(await codeOf(f.make().resolve(`a.${parent}`))).toBe("E_CUSTOM_DNS_FAILED");
    expect(f.dns.queries(`${PREFIX}-wildcard.${parent}`)).toBe(0);
  });

  it("a malformed wildcard record is E_CUSTOM_BAD_TXT, kept for the negative TTL", async () => {
    const parent = wildcardParent("not-an-address");
    const resolver = f.make();
    expect(await codeOf(resolver.resolve(`a.${parent}`))).toBe("E_CUSTOM_BAD_TXT");
    f.dns.setTxt(`${PREFIX}-wildcard.${parent}`, [`${APP}:443`]);
    f.clock += 4_999;
    expect(await codeOf(resolver.resolve(`a.${parent}`))).toBe("E_CUSTOM_BAD_TXT");
    f.clock += 1;
    expect(await resolver.resolve(`a.${parent}`)).toEqual({ appId: APP, port: 443 });
  });

  it("a wildcard answer holds no longer than the exact names' negative TTL", async () => {
    const parent = wildcardParent();
    f.dns.setNegativeSoa(2);
    const resolver = f.make();
    expect(await resolver.resolve(`a.${parent}`)).toEqual({ appId: APP, port: 8443 });
    f.dns.setTxt(`${PREFIX}.a.${parent}`, [`${APP}:1`]);
    f.clock += 1_999;
    expect(await resolver.resolve(`a.${parent}`)).toEqual({ appId: APP, port: 8443 });
    f.clock += 1;
    expect(await resolver.resolve(`a.${parent}`)).toEqual({ appId: APP, port: 1 });
  });

  it("is not asked for a name of one label", async () => {
    const before = f.dns.queries();
    expect(await codeOf(f.make().resolve("localhost"))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries() - before).toBe(2);
  });
});
