import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Cidr, formatIpv4 } from "../../../gateway-runtime/config/net.js";
import {
  allocateIp,
  capacity,
  type IpPlan,
  isAllocatable,
} from "../../../gateway-runtime/registry/allocate.js";
import { RegistryState } from "../../../gateway-runtime/registry/state.js";
import { allocatableByDefinition, cidr, DEFAULT_PLAN, ip, plan, wgKey } from "./net.js";

const alloc = (p: IpPlan, taken: string[] = [], from?: string): string | undefined => {
  const n = allocateIp({
    ...p,
    taken: new Set(taken.map(ip)),
    ...(from ? { from: ip(from) } : {}),
  });
  return n === undefined ? undefined : formatIpv4(n);
};

describe("allocateIp", () => {
  it.each([
    ["skips network and gateway", plan("10.4.0.0/24", "10.4.0.1"), [], "10.4.0.2"],
    ["skips reserved", plan("10.4.0.0/24", "10.4.0.1", ["10.4.0.0/27"]), [], "10.4.0.32"],
    [
      "skips taken",
      plan("10.4.0.0/24", "10.4.0.1", ["10.4.0.0/27"]),
      ["10.4.0.32", "10.4.0.33"],
      "10.4.0.34",
    ],
    ["fills a hole first", plan("10.4.0.0/24", "10.4.0.1"), ["10.4.0.3", "10.4.0.5"], "10.4.0.2"],
    [
      "takes the lowest hole",
      plan("10.4.0.0/24", "10.4.0.1"),
      ["10.4.0.2", "10.4.0.4"],
      "10.4.0.3",
    ],
    ["gateway outside the range", plan("10.4.1.0/24", "10.4.0.1"), [], "10.4.1.1"],
    [
      "gateway in the middle",
      plan("10.4.0.0/29", "10.4.0.3"),
      ["10.4.0.1", "10.4.0.2"],
      "10.4.0.4",
    ],
    [
      "overlapping reserved blocks",
      plan("10.4.0.0/24", "10.4.0.1", ["10.4.0.8/29", "10.4.0.0/28", "10.4.0.16/28"]),
      [],
      "10.4.0.32",
    ],
    [
      "reserved block larger than the range",
      plan("10.4.0.0/24", "10.9.0.1", ["10.0.0.0/8"]),
      [],
      undefined,
    ],
    [
      "reserved block beside the range",
      plan("10.4.0.0/24", "10.9.0.1", ["10.3.255.0/23"]),
      [],
      "10.4.0.1",
    ],
    ["/30: the two hosts", plan("10.4.0.0/30", "10.9.0.1"), [], "10.4.0.1"],
    ["/30: never the broadcast", plan("10.4.0.0/30", "10.4.0.1"), ["10.4.0.2"], undefined],
    ["/31: both addresses (RFC 3021)", plan("10.4.0.0/31", "10.9.0.1"), [], "10.4.0.0"],
    ["/31: the second", plan("10.4.0.0/31", "10.9.0.1"), ["10.4.0.0"], "10.4.0.1"],
    ["/31: beside the gateway", plan("10.4.0.0/31", "10.4.0.0"), [], "10.4.0.1"],
    ["/31: full", plan("10.4.0.0/31", "10.4.0.1"), ["10.4.0.0"], undefined],
    ["/32: the one address", plan("10.4.0.7/32", "10.4.0.1"), [], "10.4.0.7"],
    ["/32: the gateway itself", plan("10.4.0.7/32", "10.4.0.7"), [], undefined],
    ["top of the address space", plan("255.255.255.248/29", "10.0.0.1"), [], "255.255.255.249"],
    [
      "top of the address space, full",
      plan("255.255.255.252/30", "10.0.0.1"),
      ["255.255.255.253", "255.255.255.254"],
      undefined,
    ],
    ["high bit set", plan("128.0.0.0/1", "128.0.0.1"), [], "128.0.0.2"],
    [
      "taken outside the range is ignored",
      plan("10.4.0.0/30", "10.9.0.1"),
      ["10.5.0.1"],
      "10.4.0.1",
    ],
  ] as const)("%s", (_about, p, taken, expected) => {
    expect(alloc(p, [...taken])).toBe(expected);
  });

  it("a full range gives undefined", () => {
    const p = plan("10.4.0.0/28", "10.4.0.1", ["10.4.0.8/30"]);
    const taken = ["10.4.0.2", "10.4.0.3", "10.4.0.4", "10.4.0.5", "10.4.0.6", "10.4.0.7"];
    taken.push("10.4.0.12", "10.4.0.13", "10.4.0.14");
    expect(alloc(p, taken)).toBeUndefined();
    expect(alloc(p, taken.slice(1))).toBe("10.4.0.2");
  });

  it("`from` starts the search there (below the range it means the start)", () => {
    const p = plan("10.4.0.0/24", "10.4.0.1");
    expect(alloc(p, [], "10.4.0.100")).toBe("10.4.0.100");
    expect(alloc(p, ["10.4.0.100"], "10.4.0.100")).toBe("10.4.0.101");
    expect(alloc(p, [], "10.3.0.0")).toBe("10.4.0.2");
    expect(alloc(p, [], "10.4.1.0")).toBeUndefined();
  });
});

describe("capacity", () => {
  it.each([
    ["the config defaults", DEFAULT_PLAN, 4096 - 32 - 1],
    ["/24 minus network, broadcast, gateway", plan("10.4.0.0/24", "10.4.0.1"), 253],
    ["gateway outside the range", plan("10.4.0.0/24", "10.5.0.1"), 254],
    ["gateway inside a reserved block", plan("10.4.0.0/24", "10.4.0.1", ["10.4.0.0/27"]), 223],
    ["/30", plan("10.4.0.0/30", "10.4.0.1"), 1],
    ["/31", plan("10.4.0.0/31", "10.5.0.1"), 2],
    ["/32", plan("10.4.0.0/32", "10.5.0.1"), 1],
    ["all reserved", plan("10.4.0.0/24", "10.4.0.1", ["10.4.0.0/25", "10.4.0.128/25"]), 0],
    ["the whole address space", plan("0.0.0.0/0", "10.0.0.1"), 2 ** 32 - 3],
  ] as const)("%s", (_about, p, expected) => {
    expect(capacity(p)).toBe(expected);
  });
});

/** Small plans around 10.4.0.0 whose gateway and reserved blocks may fall in, across or outside the range. */
const smallPlan = fc
  .record({
    offset: fc.integer({ min: 0, max: 63 }),
    prefix: fc.integer({ min: 24, max: 32 }),
    gateway: fc.integer({ min: 0, max: 511 }),
    reserved: fc.array(
      fc.record({ at: fc.integer({ min: 0, max: 511 }), prefix: fc.integer({ min: 26, max: 32 }) }),
      { maxLength: 3 },
    ),
  })
  .map(({ offset, prefix, gateway, reserved }): IpPlan => {
    const base = ip("10.4.0.0");
    const at = (n: number, p: number): Cidr => cidr(`${formatIpv4(base + n)}/${p}`);
    return {
      range: at(offset * 4, prefix),
      gatewayIp: base + gateway,
      reserved: reserved.map((r) => at(r.at, r.prefix)),
    };
  });

describe("allocator properties", () => {
  it("matches the definition: lowest allocatable address not taken; capacity counts them", () => {
    fc.assert(
      fc.property(smallPlan, fc.array(fc.integer({ min: 0, max: 1023 })), (p, picks) => {
        const all = allocatableByDefinition(p);
        const taken = new Set(picks.map((k) => p.range.network + (k % (all.length + 3))));
        const expected = all.find((a) => !taken.has(a));
        expect(allocateIp({ ...p, taken })).toBe(expected);
        expect(capacity(p)).toBe(all.length);
        for (const a of all) expect(isAllocatable(p, a)).toBe(true);
        // A correct hint (no free address below it) never changes the answer.
        if (expected !== undefined) {
          for (const from of [p.range.network, expected - 1, expected]) {
            expect(allocateIp({ ...p, taken, from })).toBe(expected);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it("random register/remove sequences: unique, allocatable, lowest-free IPs; an instance keeps its IP", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("register" as const), id: fc.nat(40), key: fc.nat(60) }),
      fc.record({ kind: fc.constant("remove" as const), id: fc.nat(40) }),
    );
    fc.assert(
      fc.property(smallPlan, fc.array(op, { maxLength: 120 }), (p, ops) => {
        const state = RegistryState.empty(p);
        const held = new Map<string, string>(); // instance → IP, the model
        for (const o of ops) {
          const id = `i${o.id}`;
          if (o.kind === "remove") {
            expect(state.remove(id)).toBe(held.delete(id));
            continue;
          }
          const free = allocatableByDefinition(p).filter(
            (a) => ![...held.values()].includes(formatIpv4(a)),
          );
          const keyHolder = state.list().find((r) => r.publicKey === wgKey(o.key))?.instanceId;
          const req = { instanceId: id, appId: "app", publicKey: wgKey(o.key) };
          if (keyHolder !== undefined && keyHolder !== id) {
            expect(() => state.register(req, 1)).toThrow(
              expect.objectContaining({ code: "E_REGISTRY_KEY_IN_USE" }),
            );
          } else if (!held.has(id) && free[0] === undefined) {
            expect(() => state.register(req, 1)).toThrow(
              expect.objectContaining({ code: "E_REGISTRY_FULL" }),
            );
          } else {
            const record = state.register(req, 1);
            expect(record.ip).toBe(held.get(id) ?? formatIpv4(free[0] ?? -1));
            held.set(id, record.ip);
          }
          const ips = state.list().map((r) => ip(r.ip));
          expect(new Set(ips).size).toBe(ips.length);
          for (const a of ips) expect(isAllocatable(p, a)).toBe(true);
        }
        expect(Object.fromEntries(state.list().map((r) => [r.instanceId, r.ip]))).toEqual(
          Object.fromEntries(held),
        );
      }),
      { numRuns: 200 },
    );
  });
});

/** CPU time of this process in ms: unlike wall time, not inflated by other processes' turns. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

describe("allocator cost", () => {
  it("4,000 sequential allocations in a /20 without a hint take well under a second", () => {
    const taken = new Set<number>();
    const start = cpuMs();
    for (let k = 0; k < 4000; k++) {
      const n = allocateIp({ ...DEFAULT_PLAN, taken });
      if (n === undefined) throw new Error(`full after ${k}`);
      taken.add(n);
    }
    expect(cpuMs() - start).toBeLessThan(1000);
    expect(taken.size).toBe(4000);
  });

  it("a /16 filled to 60,000 through RegistryState (which passes the hint) takes well under a second", () => {
    const state = RegistryState.empty(plan("10.4.0.0/16", "10.4.0.1", ["10.4.0.0/27"]));
    const start = cpuMs();
    for (let k = 0; k < 60_000; k++)
      state.register({ instanceId: `i${k}`, appId: "a", publicKey: wgKey(k) }, 1);
    expect(cpuMs() - start).toBeLessThan(2000);
    const freed = state.get("i30000")?.ip;
    expect(state.remove("i30000")).toBe(true);
    const again = state.register({ instanceId: "new", appId: "a", publicKey: wgKey(1e6) }, 1);
    expect(again.ip).toBe(freed);
  });
});
