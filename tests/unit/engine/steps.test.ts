import { describe, expect, it } from "vitest";
import { makeUrn } from "../../../tools/engine/deployment.js";
import { cloudflareProvider, recordValue } from "../../../tools/engine/providers/cloudflare.js";
import { commandProvider } from "../../../tools/engine/providers/command.js";
import { decide, deletionOrder } from "../../../tools/engine/steps.js";
import { secret } from "../../../tools/engine/values.js";

const none = { changes: "none", replaces: [], deleteBeforeReplace: false } as const;
const some = { changes: "some", replaces: [], deleteBeforeReplace: false } as const;
const unknown = { changes: "unknown", replaces: [], deleteBeforeReplace: false } as const;

describe("the step generator's decisions", () => {
  it.each([
    ["no old state", undefined, { a: 1 }, undefined, [], "create"],
    ["the provider sees no change", { a: 1 }, { a: 1 }, none, [], "same"],
    ["the provider sees a change", { a: 1 }, { a: 2 }, some, [], "update"],
    ["the provider does not know, inputs equal", { a: 1 }, { a: 1 }, unknown, [], "same"],
    ["the provider does not know, inputs differ", { a: 1 }, { a: 2 }, unknown, [], "update"],
    ["the provider replaces", { a: 1 }, { a: 2 }, { ...some, replaces: ["a"] }, [], "replace"],
    [
      "replaceOnChanges triggers[*], a trigger changed",
      { triggers: ["x"] },
      { triggers: ["y"] },
      some,
      ["triggers[*]"],
      "replace",
    ],
    [
      "replaceOnChanges on a key that did not change",
      { a: 1, triggers: ["x"] },
      { a: 2, triggers: ["x"] },
      some,
      ["triggers[*]"],
      "update",
    ],
    ["a secret compared by its value", { k: secret("s") }, { k: "s" }, unknown, [], "same"],
  ] as const)("%s → %s", (_what, oldInputs, news, diff, replaceOnChanges, op) => {
    const d = decide({
      oldInputs: oldInputs as never,
      news: news as never,
      diff: diff as never,
      replaceOnChanges,
      deleteBeforeReplace: false,
    });
    expect(d.op).toBe(op);
  });

  it("deletes dependents and children before what they need", () => {
    const r = (urn: string, parent = "", dependencies: string[] = []) => ({
      urn,
      parent,
      dependencies,
    });
    const order = deletionOrder([
      r("stack"),
      r("region", "stack"),
      r("host", "region"),
      r("setup", "host"),
      r("restart", "host", ["setup", "config"]),
      r("config", "host", ["setup"]),
    ]).map((x) => x.urn);
    expect(order.indexOf("restart")).toBeLessThan(order.indexOf("config"));
    expect(order.indexOf("config")).toBeLessThan(order.indexOf("setup"));
    expect(order.indexOf("setup")).toBeLessThan(order.indexOf("host"));
    expect(order.slice(-2)).toEqual(["region", "stack"]);
  });

  it("URNs leave the root stack's type out of its children's", () => {
    const stack = "urn:pulumi:us::p::pulumi:pulumi:Stack::p-us";
    const region = makeUrn("us", "p", stack, "gateway:index:GatewayRegion", "us");
    expect(region).toBe("urn:pulumi:us::p::gateway:index:GatewayRegion::us");
    expect(makeUrn("us", "p", region, "command:remote:Command", "us-gw1-setup")).toBe(
      "urn:pulumi:us::p::gateway:index:GatewayRegion$command:remote:Command::us-gw1-setup",
    );
  });
});

describe("the cloudflare stand-in checks inputs as the provider documents them", () => {
  const cf = cloudflareProvider({ zones: { "example.com": "z1" } });
  const check = async (news: Record<string, unknown>) =>
    (await cf.check({ urn: "u", olds: undefined, news: news as never })).failures.map(
      (f) => f.property,
    );
  const a = { zoneId: "z1", name: "gw.example.com", type: "A", ttl: 1, content: "192.0.2.1" };

  it.each([
    ["a valid A record", a, []],
    ["missing ttl", { ...a, ttl: undefined }, ["ttl"]],
    ["ttl out of range", { ...a, ttl: 30 }, ["ttl"]],
    ["A with an IPv6 address", { ...a, content: "2001:db8::1" }, ["content"]],
    ["a name outside the zone", { ...a, name: "gw.example.org" }, ["name"]],
    ["an unknown zone", { ...a, zoneId: "z9" }, ["zoneId"]],
    ["CAA with content", { ...a, type: "CAA", content: "x" }, ["content", "data"]],
    [
      "CAA with a bad tag",
      { ...a, type: "CAA", content: undefined, data: { flags: 0, tag: "x", value: "ca" } },
      ["data.tag"],
    ],
    ["a proxied TXT", { ...a, type: "TXT", content: "v", proxied: true }, ["proxied"]],
  ] as const)("%s", async (_what, news, failures) => {
    expect(await check(news)).toEqual(failures);
  });

  it("renders records in zone-file form; zoneId replaces, the rest updates", async () => {
    expect(recordValue({ ...a, type: "TXT", content: "ab:443" }).value).toBe('"ab:443"');
    expect(recordValue({ ...a, type: "TXT", content: '"ab:443"' }).value).toBe('"ab:443"');
    expect(
      recordValue({ ...a, type: "CAA", data: { flags: 0, tag: "issue", value: "ca; x=y" } }).value,
    ).toBe('0 issue "ca; x=y"');
    const d = (news: Record<string, unknown>) =>
      cf.diff({ urn: "u", id: "i", olds: a, oldInputs: a, news: news as never });
    expect(await d({ ...a, content: "192.0.2.2" })).toEqual({ ...some, replaces: [] });
    expect(await d({ ...a, zoneId: "z2" })).toEqual({ ...some, replaces: ["zoneId"] });
  });
});

describe("the command stand-in diffs as pulumi-command 1.2.1 does", () => {
  const cmd = commandProvider({ pwd: "/", log: () => {} });
  const base = { connection: { host: "h" }, create: "echo 1", triggers: ["a"] };
  const diff = (news: Record<string, unknown>) =>
    cmd.diff({
      urn: "u",
      id: "i",
      olds: base as never,
      oldInputs: base as never,
      news: news as never,
    });

  it("fills the connection defaults at check", async () => {
    const { inputs } = await cmd.check({ urn: "u", olds: undefined, news: base as never });
    expect(inputs.connection).toEqual({
      host: "h",
      user: "root",
      port: 22,
      dialErrorLimit: 10,
      perDialTimeout: 15,
    });
  });

  it("a changed command updates; triggers added or removed replace; the same inputs are no change", async () => {
    expect(await diff({ ...base, create: "echo 2" })).toEqual({ ...some, replaces: [] });
    expect(await diff({ ...base, triggers: undefined })).toEqual({
      ...some,
      replaces: ["triggers"],
    });
    expect(await diff({ ...base, version: "1.2.1", __x: 1 })).toEqual({ ...none, replaces: [] });
  });
});
