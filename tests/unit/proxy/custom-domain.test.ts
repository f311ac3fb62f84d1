import { describe, expect, it } from "vitest";
import {
  createCustomDomainResolver,
  parseAppAddress,
} from "../../../gateway-runtime/proxy/custom-domain.js";
import {
  APP,
  codeOf,
  LEGACY,
  PREFIX,
  useCustomDomainFixture,
} from "../../helpers/custom-domains.js";

const f = useCustomDomainFixture();
const make = f.make;
const domain = f.domain;

describe("parseAppAddress", () => {
  it.each([
    [`${APP}:443`, { appId: APP, port: 443 }],
    [`${APP.toUpperCase()}:8443`, { appId: APP, port: 8443 }],
    [` ${APP}:1 `, { appId: APP, port: 1 }],
    [`${APP}:65535`, { appId: APP, port: 65535 }],
  ])("parses %j", (text, expected) => {
    expect(parseAppAddress(text)).toEqual(expected);
  });

  it.each([
    APP,
    `${APP}:`,
    `:443`,
    `${APP}:0`,
    `${APP}:65536`,
    `${APP}:0443`,
    `${APP}:44 3`,
    `${APP}:443:1`,
    `myapp:443`,
    `${APP}-1:443`,
    "",
  ])("rejects %j", (text) => {
    expect(parseAppAddress(text)).toBeUndefined();
  });
});

describe("createCustomDomainResolver against a local DNS server", () => {
  it("resolves <prefix>.<sni> to the app and port", async () => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:8443`]);
    const resolver = make();
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 8443 });
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);
    expect(f.dns.queries(`${LEGACY}.${name}`)).toBe(0);
  });

  it("falls back to the legacy prefix when the current one has no record", async () => {
    const name = domain();
    f.dns.setTxt(`${LEGACY}.${name}`, [`${APP}:555`]);
    const resolver = make();
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 555 });
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);
    expect(f.dns.queries(`${LEGACY}.${name}`)).toBe(1);
  });

  it("prefers the current prefix when both have records", async () => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:1`]);
    f.dns.setTxt(`${LEGACY}.${name}`, [`${APP}:2`]);
    expect(await make().resolve(name)).toEqual({ appId: APP, port: 1 });
  });

  it("does not try the legacy prefix when none is configured", async () => {
    const name = domain();
    f.dns.setTxt(`${LEGACY}.${name}`, [`${APP}:555`]);
    const resolver = f.track(
      createCustomDomainResolver({
        timeoutMs: 1_000,
        ttlCapMs: 1_000,
        negativeTtlMs: 1_000,
        maxEntries: 10,
        servers: [f.dns.address],
      }),
    );
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries(`_dstack-app-address.${name}`)).toBe(1);
    expect(f.dns.queries(`${LEGACY}.${name}`)).toBe(0);
  });

  it("joins the chunks of one TXT record", async () => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [[APP.slice(0, 20), APP.slice(20), ":", "9000"]]);
    expect(await make().resolve(name)).toEqual({ appId: APP, port: 9000 });
  });

  it("accepts several records that agree and rejects records that conflict", async () => {
    const agree = domain();
    const conflict = domain();
    f.dns.setTxt(`${PREFIX}.${agree}`, [`${APP}:9000`, `${APP}:9000`]);
    f.dns.setTxt(`${PREFIX}.${conflict}`, [`${APP}:9000`, `${APP}:9001`]);
    const resolver = make();
    expect(await resolver.resolve(agree)).toEqual({ appId: APP, port: 9000 });
    expect(await codeOf(resolver.resolve(conflict))).toBe("E_CUSTOM_BAD_TXT");
  });

  it.each([
    ["no colon", APP],
    ["port 0", `${APP}:0`],
    ["port too large", `${APP}:70000`],
    ["port not a number", `${APP}:https`],
    ["empty app id", ":443"],
    ["empty port", `${APP}:`],
    ["app id not hex", "my-app:443"],
  ])("rejects a malformed value (%s) with E_CUSTOM_BAD_TXT", async (_why, value) => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [value]);
    f.dns.setTxt(`${LEGACY}.${name}`, [`${APP}:443`]);
    const resolver = make();
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_BAD_TXT");
    // a broken current record is reported, not papered over with the legacy one
    expect(f.dns.queries(`${LEGACY}.${name}`)).toBe(0);
  });

  it("caches a malformed record for the negative TTL", async () => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, ["garbage"]);
    const resolver = make();
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_BAD_TXT");
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_BAD_TXT");
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    f.clock += 5_000;
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
  });

  it("negatively caches NXDOMAIN for negativeTtlMs, then asks again", async () => {
    const name = domain();
    const resolver = make();
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);
    expect(f.dns.queries(`${LEGACY}.${name}`)).toBe(1);

    f.clock += 4_999;
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);

    f.clock += 1;
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(2);
  });

  it("treats a name with records of other types only (NODATA) as no record", async () => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, []);
    expect(await codeOf(make().resolve(name))).toBe("E_CUSTOM_NO_TXT");
  });

  it("serves positive answers from the cache until ttlCapMs, then asks again", async () => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    const resolver = make();
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:444`]);
    f.clock += 59_999;
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
    expect(await resolver.resolve(name.toUpperCase())).toEqual({ appId: APP, port: 443 });
    expect(await resolver.resolve(`${name}.`)).toEqual({ appId: APP, port: 443 });
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);
    f.clock += 1;
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 444 });
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(2);
  });

  it("keeps at most maxEntries, dropping the least recently used", async () => {
    const names = [domain(), domain(), domain(), domain()];
    for (const name of names) f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    const resolver = make({ maxEntries: 3 });
    const [a, b, c, d] = names as [string, string, string, string];
    await resolver.resolve(a);
    await resolver.resolve(b);
    await resolver.resolve(c);
    expect(resolver.size()).toBe(3);
    await resolver.resolve(a); // a is now the most recent; b is the oldest
    await resolver.resolve(d);
    expect(resolver.size()).toBe(3);
    await resolver.resolve(a);
    await resolver.resolve(c);
    expect(f.dns.queries(`${PREFIX}.${a}`)).toBe(1);
    expect(f.dns.queries(`${PREFIX}.${c}`)).toBe(1);
    await resolver.resolve(b);
    expect(f.dns.queries(`${PREFIX}.${b}`)).toBe(2);
    expect(resolver.size()).toBe(3);
  });

  it("coalesces concurrent lookups of one name into one query", async () => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    const resolver = make();
    const results = await Promise.all(Array.from({ length: 10 }, () => resolver.resolve(name)));
    expect(results).toEqual(Array.from({ length: 10 }, () => ({ appId: APP, port: 443 })));
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);
  });

  it("coalesces concurrent misses too", async () => {
    const name = domain();
    const resolver = make();
    const codes = await Promise.all(
      Array.from({ length: 10 }, () => codeOf(resolver.resolve(name))),
    );
    expect(codes).toEqual(Array.from({ length: 10 }, () => "E_CUSTOM_NO_TXT"));
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);
    expect(f.dns.queries(`${LEGACY}.${name}`)).toBe(1);
  });

  it("fails fast with E_CUSTOM_BUSY beyond maxEntries distinct lookups in flight", async () => {
    f.dns.setMode("silent");
    const resolver = make({ maxEntries: 2, timeoutMs: 200 });
    const [a, b, c] = [domain(), domain(), domain()];
    const pending = [codeOf(resolver.resolve(a)), codeOf(resolver.resolve(b))];
    expect(await codeOf(resolver.resolve(c))).toBe("E_CUSTOM_BUSY");
    expect(f.dns.queries(`${PREFIX}.${c}`)).toBe(0);
    expect(await Promise.all(pending)).toEqual(["E_CUSTOM_DNS_FAILED", "E_CUSTOM_DNS_FAILED"]);
    f.dns.setMode("answer");
    expect(await codeOf(resolver.resolve(c))).toBe("E_CUSTOM_NO_TXT");
  });

  it("treats a query name too long for DNS as no record", async () => {
    const name = `${"a".repeat(60)}.${"b".repeat(60)}.${"c".repeat(60)}.${"d".repeat(60)}.test`;
    const resolver = make();
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(0);
    expect(resolver.size()).toBe(1);
  });

  it("fails within timeoutMs when the server never answers, and does not cache it", async () => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    f.dns.setMode("silent");
    const resolver = make({ timeoutMs: 300 });
    const started = performance.now();
    const codes = await Promise.all([
      codeOf(resolver.resolve(name)),
      codeOf(resolver.resolve(name)),
    ]);
    const elapsed = performance.now() - started;
    expect(codes).toEqual(["E_CUSTOM_DNS_FAILED", "E_CUSTOM_DNS_FAILED"]);
    expect(elapsed).toBeLessThan(1_500); // its own 300 ms bound, not the resolver's retries (seconds)
    expect(resolver.size()).toBe(0);

    f.dns.setMode("answer");
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
  });

  it("reports SERVFAIL as E_CUSTOM_DNS_FAILED without caching it", async () => {
    const name = domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    f.dns.setMode("servfail");
    const resolver = make();
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_DNS_FAILED");
    expect(f.dns.queries(`${LEGACY}.${name}`)).toBe(0);
    f.dns.setMode("answer");
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
  });

  it("close cancels lookups in flight and refuses new ones", async () => {
    const name = domain();
    f.dns.setMode("silent");
    const resolver = make({ timeoutMs: 5_000 });
    const pending = codeOf(resolver.resolve(name));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    resolver.close();
    expect(await pending).toBe("E_CUSTOM_CLOSED");
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_CLOSED");
  });

  it("rejects bad server addresses at creation", () => {
    expect(() =>
      createCustomDomainResolver({
        timeoutMs: 1,
        ttlCapMs: 1,
        negativeTtlMs: 1,
        maxEntries: 1,
        servers: ["not an address"],
      }),
    ).toThrow(expect.objectContaining({ code: "E_CUSTOM_CONFIG" }));
  });
});
