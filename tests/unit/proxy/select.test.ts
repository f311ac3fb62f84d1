import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import {
  type Balance,
  FAILURE_PENALTY_MS,
  InstanceSelector,
} from "../../../gateway-runtime/proxy/select.js";

const NOW = 1_000_000_000;
const MIN = 60_000;

function directory(instances: [id: string, app: string, handshakeAgeMs: number | null][]) {
  const d = new MemoryDirectory();
  instances.forEach(([id, appId, age], k) => {
    d.upsert({ id, appId, ip: `10.4.0.${k + 40}`, lastHandshakeMs: age === null ? 0 : NOW - age });
  });
  return d;
}

function selector(
  d: MemoryDirectory,
  balance: Balance = "least_conn",
  extra: { topN?: number; cacheMs?: number } = {},
) {
  let now = NOW;
  const s = new InstanceSelector(d, {
    topN: extra.topN ?? 3,
    cacheMs: extra.cacheMs ?? 30_000,
    healthyAgeMs: 5 * MIN,
    balance,
    now: () => now,
  });
  return { s, advance: (ms: number) => (now += ms) };
}

/** Candidate ids in order; empty when the selection is not "ok" (other tests check the kind). */
const ids = (sel: ReturnType<InstanceSelector["select"]>): string[] =>
  sel.kind === "ok" ? sel.candidates.map((i) => i.id) : [];

describe("instance selection", () => {
  const d = directory([
    ["a1", "aaa", 1_000],
    ["a2", "aaa", 4 * MIN],
    ["a3", "aaa", 6 * MIN], // stale
    ["a4", "aaa", null], // never shook hands
    ["b1", "bbb", 10 * MIN],
  ]);

  it("an unknown id is unknown", () => {
    expect(selector(d).s.select("ccc", "1.2.3.4")).toEqual({ kind: "unknown" });
  });

  it("an app with no healthy instance is reported as such", () => {
    expect(selector(d).s.select("bbb", "1.2.3.4")).toEqual({ kind: "unhealthy", appId: "bbb" });
  });

  it("only healthy instances of the app are candidates", () => {
    expect(ids(selector(d).s.select("aaa", "1.2.3.4")).sort()).toEqual(["a1", "a2"]);
  });

  it("a named instance is tried whatever its health, and belongs to its app", () => {
    expect(selector(d).s.select("a3", "1.2.3.4")).toMatchObject({
      kind: "ok",
      appId: "aaa",
      candidates: [{ id: "a3" }],
    });
  });

  it("skips an instance out of rotation for its app, and reaches it by its id", () => {
    const gated = directory([
      ["a1", "aaa", 1_000],
      ["a2", "aaa", 1_000],
    ]);
    const a2 = gated.instance("a2");
    if (a2) gated.upsert({ ...a2, outOfRotation: true });
    const { s } = selector(gated);
    expect(ids(s.select("aaa", "1.2.3.4"))).toEqual(["a1"]);
    expect(ids(s.select("a2", "1.2.3.4"))).toEqual(["a2"]);
    const a1 = gated.instance("a1");
    if (a1) gated.upsert({ ...a1, outOfRotation: true });
    expect(s.select("aaa", "1.2.3.4")).toEqual({ kind: "unhealthy", appId: "aaa" });
  });

  it("takes at most topN candidates", () => {
    const many = directory(
      Array.from({ length: 10 }, (_, k) => [`i${k}`, "app", 1000] as [string, string, number]),
    );
    expect(ids(selector(many, "random", { topN: 3 }).s.select("app", "x"))).toHaveLength(3);
  });

  it("least_conn puts the instance with the fewest open connections first", () => {
    const { s } = selector(d);
    s.acquire("a1");
    s.acquire("a1");
    s.acquire("a2");
    expect(ids(s.select("aaa", "x"))).toEqual(["a2", "a1"]);
    s.release("a1");
    s.release("a1");
    expect(ids(s.select("aaa", "x"))).toEqual(["a1", "a2"]);
  });

  it("least_conn spreads sequential connections evenly", () => {
    const many = directory(
      Array.from({ length: 4 }, (_, k) => [`i${k}`, "app", 1000] as [string, string, number]),
    );
    const { s } = selector(many);
    for (let k = 0; k < 40; k++) s.acquire(ids(s.select("app", "x"))[0] ?? "");
    expect([0, 1, 2, 3].map((k) => s.activeConnections(`i${k}`))).toEqual([10, 10, 10, 10]);
  });

  it("least_conn orders all candidates by open connections and breaks ties uniformly", () => {
    const five = directory(
      Array.from({ length: 5 }, (_, k) => [`i${k}`, "app", 1000] as [string, string, number]),
    );
    let seed = 7;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const s = new InstanceSelector(five, {
      topN: 4,
      cacheMs: 30_000,
      healthyAgeMs: 5 * MIN,
      balance: "least_conn",
      now: () => NOW,
      random,
    });
    // open connections: i0 2, i1 0, i2 1, i3 0, i4 1
    for (const [id, n] of [
      ["i0", 2],
      ["i2", 1],
      ["i4", 1],
    ] as const)
      for (let k = 0; k < n; k++) s.acquire(id);
    const firsts = new Map<string, number>();
    for (let k = 0; k < 6000; k++) {
      const order = ids(s.select("app", "x"));
      const counts = order.map((id) => s.activeConnections(id));
      expect(counts).toEqual([0, 0, 1, 1]); // fewest first; i0 (2) never makes the top 4
      firsts.set(order[0] ?? "", (firsts.get(order[0] ?? "") ?? 0) + 1);
    }
    // the two idle instances share the first place about evenly
    expect([...firsts.keys()].sort()).toEqual(["i1", "i3"]);
    for (const n of firsts.values()) expect(Math.abs(n - 3000)).toBeLessThan(200);
  });

  it("round_robin rotates the first candidate", () => {
    const { s } = selector(d, "round_robin", { topN: 1 });
    expect([1, 2, 3, 4].map(() => ids(s.select("aaa", "x"))[0])).toEqual(["a1", "a2", "a1", "a2"]);
  });

  it("ip_hash keeps one client on one instance and spreads clients", () => {
    const many = directory(
      Array.from({ length: 8 }, (_, k) => [`i${k}`, "app", 1000] as [string, string, number]),
    );
    const { s } = selector(many, "ip_hash", { topN: 1 });
    const first = ids(s.select("app", "192.0.2.7"))[0];
    for (let k = 0; k < 5; k++) expect(ids(s.select("app", "192.0.2.7"))[0]).toBe(first);
    const spread = new Set(
      Array.from({ length: 100 }, (_, k) => ids(s.select("app", `198.51.100.${k}`))[0]),
    );
    expect(spread.size).toBeGreaterThanOrEqual(6);
  });

  it("caches the healthy list for cacheMs, and drops it when instances change", () => {
    const live = directory([["x1", "app", 1000]]);
    const { s, advance } = selector(live, "least_conn", { cacheMs: 30_000 });
    expect(ids(s.select("app", "c"))).toEqual(["x1"]);
    live.setHandshake("x1", 0); // goes unhealthy, but the cached list holds for 30 s
    expect(ids(s.select("app", "c"))).toEqual(["x1"]);
    advance(30_001);
    expect(s.select("app", "c")).toEqual({ kind: "unhealthy", appId: "app" });
    live.upsert({ id: "x2", appId: "app", ip: "10.4.0.99", lastHandshakeMs: NOW + 30_000 });
    expect(ids(s.select("app", "c"))).toEqual(["x2"]);
  });

  it("puts an instance whose connect failed behind the others for FAILURE_PENALTY_MS, under every balance", () => {
    const three = directory([
      ["i0", "app", 1000],
      ["i1", "app", 1000],
      ["i2", "app", 1000],
    ]);
    for (const balance of ["least_conn", "random", "round_robin", "ip_hash"] as const) {
      const { s, advance } = selector(three, balance, { topN: 3 });
      s.acquire("i1");
      s.acquire("i2"); // least_conn alone would put the idle i0 first
      s.failed("i0");
      for (let k = 0; k < 20; k++) expect(ids(s.select("app", `198.51.100.${k}`))[2]).toBe("i0");
      advance(FAILURE_PENALTY_MS - 1);
      expect(ids(s.select("app", "x"))[2]).toBe("i0");
      advance(1);
      const after = Array.from(
        { length: 20 },
        (_, k) => ids(s.select("app", `198.51.100.${k}`))[0],
      );
      expect(after).toContain("i0");
      if (balance === "least_conn") expect(new Set(after)).toEqual(new Set(["i0"]));
    }
  });

  it("leaves a failed instance out of a short top N while healthy others remain", () => {
    const three = directory([
      ["i0", "app", 1000],
      ["i1", "app", 1000],
      ["i2", "app", 1000],
    ]);
    const { s } = selector(three, "round_robin", { topN: 2 });
    s.failed("i1");
    for (let k = 0; k < 6; k++) expect(ids(s.select("app", "x")).sort()).toEqual(["i0", "i2"]);
    s.failed("i0");
    s.failed("i2"); // all failed: the balance's own order again
    expect(ids(s.select("app", "x"))).toHaveLength(2);
  });

  it("a successful connect ends an instance's penalty at once", () => {
    const two = directory([
      ["i0", "app", 1000],
      ["i1", "app", 1000],
    ]);
    const { s } = selector(two);
    s.failed("i0");
    expect(ids(s.select("app", "x"))).toEqual(["i1", "i0"]);
    s.acquire("i0");
    s.release("i0");
    const firsts = new Set(Array.from({ length: 40 }, () => ids(s.select("app", "x"))[0]));
    expect(firsts).toEqual(new Set(["i0", "i1"]));
  });

  it("counts failed connects per instance, and forgets the counts of removed instances", () => {
    const two = directory([
      ["i0", "app", 1000],
      ["i1", "app", 1000],
    ]);
    const { s } = selector(two);
    s.failed("i0");
    s.failed("i0");
    expect(s.connectFailures()).toEqual(new Map([["i0", 2]]));
    for (let k = 0; k < 3000; k++) s.failed(`gone${k}`); // instances no longer registered
    s.failed("i1");
    expect(s.connectFailures().get("i0")).toBe(2);
    expect(s.connectFailures().get("i1")).toBe(1);
    expect(s.connectFailures().size).toBeLessThanOrEqual(1024);
  });

  it("a named instance is tried even while it is penalised", () => {
    const two = directory([
      ["i0", "app", 1000],
      ["i1", "app", 1000],
    ]);
    const { s } = selector(two);
    s.failed("i0");
    expect(ids(s.select("i0", "x"))).toEqual(["i0"]);
  });

  it("never returns an unhealthy, foreign or duplicate instance (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.constantFrom("aa", "bb"), fc.option(fc.integer({ min: 0, max: 20 * MIN }))),
          { minLength: 1, maxLength: 12 },
        ),
        fc.constantFrom<Balance>("least_conn", "random", "round_robin", "ip_hash"),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.integer({ min: 0, max: 11 })),
        (spec, balance, topN, failedIdx) => {
          const dir = directory(
            spec.map(([app, age], k) => [`i${k}`, app, age] as [string, string, number | null]),
          );
          const { s } = selector(dir, balance, { topN });
          const failed = new Set(failedIdx.map((k) => `i${k}`));
          for (const id of failed) s.failed(id);
          const sel = s.select("aa", "203.0.113.1");
          if (sel.kind !== "ok") return;
          const got = sel.candidates;
          expect(new Set(got.map((i) => i.id)).size).toBe(got.length);
          expect(got.length).toBe(
            Math.min(
              topN,
              dir.appInstances("aa").filter((i) => NOW - i.lastHandshakeMs < 5 * MIN).length,
            ),
          );
          const fresh = got.map((i) => !failed.has(i.id));
          expect(fresh).toEqual([...fresh].sort((a, b) => Number(b) - Number(a))); // none failed before a fresh one
          for (const i of got) {
            expect(i.appId).toBe("aa");
            expect(NOW - i.lastHandshakeMs).toBeLessThan(5 * MIN);
          }
        },
      ),
    );
  });
});
