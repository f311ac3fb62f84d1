import { afterAll, beforeEach, describe, expect, it } from "vitest";
import {
  CloudflareProvider,
  unquoteTxtContent,
} from "../../../gateway-runtime/certs/dns/cloudflare.js";
import { CertError } from "../../../gateway-runtime/certs/errors.js";
import { type CloudflareFake, startCloudflareFake } from "../../helpers/cloudflare-fake.js";

const ZONE = "app.test.example";
const NAME = `_acme-challenge.${ZONE}`;
let fake: CloudflareFake;
let cf: CloudflareProvider;

beforeEach(async () => {
  await fake?.close();
  fake = await startCloudflareFake({ zoneName: ZONE });
  cf = new CloudflareProvider({ apiToken: fake.token, zoneId: fake.zoneId, baseURL: fake.baseURL });
});
afterAll(async () => {
  await fake?.close();
});

const txt = () =>
  fake
    .records("TXT", NAME)
    .map((r) => r.content)
    .sort();
const rejection = async (p: Promise<unknown>): Promise<CertError> => {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(CertError);
  return e as CertError;
};

describe("CloudflareProvider TXT", () => {
  it("adds a quoted value once, however often it is set", async () => {
    await cf.setTxt(NAME, "token-1");
    await cf.setTxt(NAME, "token-1");
    expect(txt()).toEqual(['"token-1"']);
    const created = fake.records("TXT", NAME)[0];
    expect(created).toMatchObject({ type: "TXT", name: NAME, ttl: 60 });
    expect(fake.requests.filter((r) => r.method === "POST")).toHaveLength(1);
    expect(fake.requests[0]?.query).toMatchObject({ type: "TXT", "name.exact": NAME });
  });

  it("removes only its own value and leaves the others (quoted or not)", async () => {
    fake.seed({ type: "TXT", name: NAME, content: "unquoted-other" });
    fake.seed({ type: "TXT", name: NAME, content: '"quoted-other"' });
    await cf.setTxt(NAME, "mine-wildcard");
    await cf.setTxt(NAME, "mine-apex");
    await cf.removeTxt(NAME, "mine-wildcard");
    expect(txt()).toEqual(['"mine-apex"', '"quoted-other"', "unquoted-other"]);
    await cf.removeTxt(NAME, "mine-apex");
    await cf.removeTxt(NAME, "never-there");
    expect(txt()).toEqual(['"quoted-other"', "unquoted-other"]);
  });

  it("finds its value beyond the first page of results", async () => {
    for (let i = 0; i < 130; i++) fake.seed({ type: "TXT", name: NAME, content: `"filler-${i}"` });
    await cf.setTxt(NAME, "late");
    await cf.removeTxt(NAME, "late");
    expect(txt()).toHaveLength(130);
    expect(fake.requests.some((r) => r.method === "GET" && r.query.page === "2")).toBe(true);
  });

  it("matches values with quotes and backslashes exactly", async () => {
    await cf.setTxt(NAME, 'a"b\\c');
    expect(txt()).toEqual(['"a\\"b\\\\c"']);
    expect(unquoteTxtContent(txt()[0] ?? "")).toBe('a"b\\c');
    await cf.removeTxt(NAME, 'a"b\\c');
    expect(txt()).toEqual([]);
  });
});

describe("CloudflareProvider CAA", () => {
  const newSet = [
    {
      flags: 0,
      tag: "issue",
      value: "ca.example; accounturi=https://ca.example/acct/2; validationmethods=dns-01",
    },
    {
      flags: 0,
      tag: "issuewild",
      value: "ca.example; accounturi=https://ca.example/acct/2; validationmethods=dns-01",
    },
  ];

  it("creates the new records before deleting the old ones, keeps unchanged ones", async () => {
    fake.seed({
      type: "CAA",
      name: ZONE,
      content: '0 issue "old.example"',
      data: { flags: 0, tag: "issue", value: "old.example" },
    });
    const same = newSet[1] as (typeof newSet)[1];
    fake.seed({ type: "CAA", name: ZONE, content: `0 issuewild "${same.value}"`, data: same });
    const before = fake.requests.length;
    await cf.setCaa(ZONE, newSet);
    const writes = fake.requests
      .slice(before)
      .filter((r) => r.method !== "GET")
      .map((r) => r.method);
    expect(writes).toEqual(["POST", "DELETE"]);
    expect(await cf.listCaa(ZONE)).toEqual(expect.arrayContaining(newSet));
    expect(await cf.listCaa(ZONE)).toHaveLength(2);
    await cf.setCaa(ZONE, newSet);
    expect(fake.requests.slice(before).filter((r) => r.method !== "GET")).toHaveLength(2);
  });

  it("never touches CAA of other names or TXT records", async () => {
    fake.seed({
      type: "CAA",
      name: `sub.${ZONE}`,
      content: '0 issue "x"',
      data: { flags: 0, tag: "issue", value: "x" },
    });
    fake.seed({ type: "TXT", name: ZONE, content: '"v=spf1 -all"' });
    await cf.setCaa(ZONE, newSet);
    expect(fake.records("CAA", `sub.${ZONE}`)).toHaveLength(1);
    expect(fake.records("TXT", ZONE)).toHaveLength(1);
  });
});

describe("CloudflareProvider errors", () => {
  it("reports a wrong token as E_CERT_DNS with the API's message, never the token", async () => {
    const bad = new CloudflareProvider({
      apiToken: "wrong-token-value",
      zoneId: fake.zoneId,
      baseURL: fake.baseURL,
    });
    const e = await rejection(bad.setTxt(NAME, "x"));
    expect(e.code).toBe("E_CERT_DNS");
    expect(e.message).toMatch(/403/);
    expect(e.message).toMatch(/Invalid access token/);
    expect(e.message).not.toMatch(/wrong-token-value/);
  });

  it("reports an unknown zone", async () => {
    const bad = new CloudflareProvider({
      apiToken: fake.token,
      zoneId: "0123456789abcdef0123456789abcdef",
      baseURL: fake.baseURL,
    });
    expect((await rejection(bad.listCaa(ZONE))).message).toMatch(/7003|Could not route/);
  });

  it("gets through one server error with the SDK's retry", async () => {
    fake.failNext(1, 500);
    await cf.setTxt(NAME, "after-retry");
    expect(txt()).toEqual(['"after-retry"']);
    expect(fake.requests[0]?.status).toBe(500);
  });

  it("gives up after the retries and does not retry a 400", async () => {
    const once = new CloudflareProvider({
      apiToken: fake.token,
      zoneId: fake.zoneId,
      baseURL: fake.baseURL,
      maxRetries: 0,
    });
    fake.failNext(1, 400, 9005, "Content for TXT record is invalid.");
    expect((await rejection(once.setTxt(NAME, "x"))).message).toMatch(
      /Content for TXT record is invalid/,
    );
    expect(fake.requests).toHaveLength(1);
  });

  it("stops when the signal aborts", async () => {
    const controller = new AbortController();
    controller.abort();
    const e = await cf.setTxt(NAME, "x", { signal: controller.signal }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(Error);
    expect(fake.records("TXT")).toEqual([]);
  });
});
