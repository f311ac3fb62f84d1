/**
 * How long custom-domain answers are kept: the TTL the DNS gives, capped by `ttlCapMs` and
 * `negativeTtlMs`; and how the lookup reaches the DNS (TCP after a truncated UDP answer, the
 * next server when one is silent, all within `timeoutMs`).
 */
import { describe, expect, it } from "vitest";
import {
  APP,
  codeOf,
  LEGACY,
  PREFIX,
  useCustomDomainFixture,
} from "../../helpers/custom-domains.js";
import { startDnsServer } from "../../helpers/dns-server.js";
import { until } from "../../../testkit/poll.js";

const f = useCustomDomainFixture();

describe("cache lifetimes from TTLs", () => {
  it("a changed TXT record takes effect after its TTL and not before (real clock)", async () => {
    const name = f.domain();
    f.dns.setTtl(1);
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    const resolver = f.make({ now: Date.now });
    const started = Date.now();
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:444`]);
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
    const changedAt = await until(
      "the new TXT value",
      async () => (await resolver.resolve(name)).port === 444 && Date.now(),
      3_000,
      { everyMs: 20 },
    );
    expect(changedAt - started).toBeGreaterThanOrEqual(1_000);
    expect(changedAt - started).toBeLessThan(2_500);
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(2);
  });

  it("keeps a positive answer for its TTL when that is shorter than ttlCapMs", async () => {
    const name = f.domain();
    f.dns.setTtl(20);
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    const resolver = f.make();
    await resolver.resolve(name);
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:444`]);
    f.clock += 19_999;
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
    f.clock += 1;
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 444 });
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(2);
  });

  it("resolveTimed says how much longer the answer holds (HAProxy's map keeps it that long)", async () => {
    const name = f.domain();
    f.dns.setTtl(20);
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    const resolver = f.make();
    const timed = await resolver.resolveTimed(`${name.toUpperCase()}.`);
    expect(timed).toEqual({ name, appId: APP, port: 443, ttlMs: 20_000 });
    f.clock += 15_000;
    expect(await resolver.resolveTimed(name)).toMatchObject({ port: 443, ttlMs: 5_000 });
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);
    // Capped like the cache: a long TTL holds for ttlCapMs (60 s here).
    const long = f.domain();
    f.dns.setTtl(3_600);
    f.dns.setTxt(`${PREFIX}.${long}`, [`${APP}:443`]);
    expect((await resolver.resolveTimed(long)).ttlMs).toBe(60_000);
    // TTL 0: nothing is kept, so nothing may be installed.
    const zero = f.domain();
    f.dns.setTtl(0);
    f.dns.setTxt(`${PREFIX}.${zero}`, [`${APP}:443`]);
    expect((await resolver.resolveTimed(zero)).ttlMs).toBe(0);
    expect(await codeOf(resolver.resolveTimed(f.domain()))).toBe("E_CUSTOM_NO_TXT");
  });

  it("asks again on every connection for a record with TTL 0", async () => {
    const name = f.domain();
    f.dns.setTtl(0);
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    const resolver = f.make();
    await resolver.resolve(name);
    await resolver.resolve(name);
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(2);
    expect(resolver.size()).toBe(0);
  });

  it.each([
    ["the SOA's negative TTL below the cap", 2, 2_000],
    ["negativeTtlMs when the SOA's is longer", 60, 5_000],
    ["negativeTtlMs when the answer has no SOA", undefined, 5_000],
  ])("keeps NXDOMAIN for %s", async (_what, soa, keptMs) => {
    const name = f.domain();
    f.dns.setNegativeSoa(soa);
    const resolver = f.make();
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_NO_TXT");
    f.clock += keptMs - 1;
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(1);
    f.clock += 1;
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_NO_TXT");
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(2);
  });

  it("keeps a malformed record for its TTL when that is shorter than negativeTtlMs", async () => {
    const name = f.domain();
    f.dns.setTtl(1);
    f.dns.setTxt(`${PREFIX}.${name}`, ["garbage"]);
    const resolver = f.make();
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_BAD_TXT");
    f.clock += 999;
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_BAD_TXT");
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    f.clock += 1;
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
  });

  it("keeps a legacy answer no longer than the missing current record's negative TTL", async () => {
    const name = f.domain();
    f.dns.setNegativeSoa(2);
    f.dns.setTxt(`${LEGACY}.${name}`, [`${APP}:555`]);
    const resolver = f.make();
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 555 });
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    f.clock += 1_999;
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 555 });
    f.clock += 1;
    expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
  });
});

describe("reaching the DNS", () => {
  it("asks again over TCP when the UDP answer is truncated", async () => {
    const name = f.domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:8443`]);
    f.dns.setMode("truncate");
    expect(await f.make().resolve(name)).toEqual({ appId: APP, port: 8443 });
    expect(f.dns.queries(`${PREFIX}.${name}`)).toBe(2);
    expect(f.dns.tcpQueries(`${PREFIX}.${name}`)).toBe(1);
  });

  it("asks the next server when one stays silent, within timeoutMs", async () => {
    const silent = await startDnsServer();
    try {
      silent.setMode("silent");
      const name = f.domain();
      f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
      const resolver = f.make({ servers: [silent.address, f.dns.address], timeoutMs: 1_000 });
      const started = performance.now();
      expect(await resolver.resolve(name)).toEqual({ appId: APP, port: 443 });
      const elapsed = performance.now() - started;
      expect(silent.queries(`${PREFIX}.${name}`)).toBe(1);
      expect(elapsed).toBeGreaterThanOrEqual(450); // the silent server's half of the bound
      expect(elapsed).toBeLessThan(1_000);
    } finally {
      await silent.close();
    }
  });

  it("fails within timeoutMs when every server is silent, and does not cache it", async () => {
    const name = f.domain();
    f.dns.setTxt(`${PREFIX}.${name}`, [`${APP}:443`]);
    f.dns.setMode("silent");
    const resolver = f.make({ servers: [f.dns.address, f.dns.address], timeoutMs: 400 });
    const started = performance.now();
    expect(await codeOf(resolver.resolve(name))).toBe("E_CUSTOM_DNS_FAILED");
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(resolver.size()).toBe(0);
  });
});
