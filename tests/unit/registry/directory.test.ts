import { describe, expect, it } from "vitest";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";

const inst = (id: string, appId: string, lastHandshakeMs = 1) => ({
  id,
  appId,
  ip: `10.4.0.${id.length}`,
  lastHandshakeMs,
});

describe("MemoryDirectory", () => {
  it("tells listeners about every change, handshakes included, until they unsubscribe", () => {
    const d = new MemoryDirectory();
    let calls = 0;
    const off = d.onChange(() => calls++);
    d.upsert(inst("a1", "aa"));
    const afterUpsert = calls;
    expect(afterUpsert).toBeGreaterThan(0);
    d.setHandshake("a1", 5);
    expect(calls).toBe(afterUpsert + 1);
    d.setHandshake("a1", 5); // no change, no call
    expect(calls).toBe(afterUpsert + 1);
    d.remove("a1");
    expect(calls).toBe(afterUpsert + 2);
    off();
    d.upsert(inst("a2", "aa"));
    expect(calls).toBe(afterUpsert + 2);
  });

  it("replaceAll makes it exactly the given instances and moves the version", () => {
    const d = new MemoryDirectory();
    d.upsert(inst("a1", "aa"));
    d.upsert(inst("b1", "bb"));
    const version = d.version;
    d.replaceAll([inst("a2", "aa", 7), inst("a3", "aa"), inst("c1", "cc")]);
    expect(d.version).toBeGreaterThan(version);
    expect(d.instance("a1")).toBeUndefined();
    expect(d.appInstances("bb")).toEqual([]);
    expect(d.appInstances("aa").map((i) => i.id)).toEqual(["a2", "a3"]);
    expect(d.instance("a2")?.lastHandshakeMs).toBe(7);
    expect(
      d
        .all()
        .map((i) => i.id)
        .sort(),
    ).toEqual(["a2", "a3", "c1"]);
  });
});
