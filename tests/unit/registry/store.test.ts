import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { IpPlan } from "../../../gateway-runtime/registry/allocate.js";
import {
  FileRegistrationStore,
  type FileStoreOptions,
} from "../../../gateway-runtime/registry/store.js";
import { DEFAULT_PLAN, plan, wgKey } from "./net.js";
import { tempDir } from "./temp.js";

let dir: string;
let cleanup: () => Promise<void>;
let file: string;
const open: FileRegistrationStore[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  file = join(dir, "state", "registry.json");
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await cleanup();
});

async function store(p: IpPlan = DEFAULT_PLAN, options: FileStoreOptions = {}) {
  const s = await FileRegistrationStore.open(file, p, options);
  open.push(s);
  return s;
}

const req = (n: number, appId = "app1") => ({ instanceId: `inst${n}`, appId, publicKey: wgKey(n) });

describe("FileRegistrationStore", () => {
  it("starts empty on a missing file, creating its directory with mode 0700 and no file", async () => {
    const s = await store();
    expect(s.list()).toEqual([]);
    expect((await stat(join(dir, "state"))).mode & 0o777).toBe(0o700);
    expect(await readdir(join(dir, "state"))).toEqual([]);
  });

  it("hands out the lowest free address and writes versioned JSON with mode 0600", async () => {
    let now = 1000;
    const s = await store(DEFAULT_PLAN, { now: () => now++ });
    const a = await s.register(req(1));
    const b = await s.register(req(2));
    expect([a.ip, b.ip]).toEqual(["10.4.0.32", "10.4.0.33"]);
    expect(a).toEqual({ ...req(1), ip: "10.4.0.32", registeredAt: 1000, updatedAt: 1000 });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ version: 1, instances: [a, b] });
  });

  it("reopening gives the same state", async () => {
    const s = await store();
    await Promise.all([1, 2, 3, 4, 5].map((n) => s.register(req(n, `app${n % 2}`))));
    await s.remove("inst2");
    await s.register({ ...req(3, "app1"), publicKey: wgKey(33) });
    const before = s.list();
    await s.close();
    const again = await store();
    expect(again.list()).toEqual(before);
    expect(again.get("inst3")?.publicKey).toBe(wgKey(33));
    // The freed address is handed out again, lowest first.
    expect((await again.register(req(9))).ip).toBe("10.4.0.33");
  });

  it("keeps the reported port policy with the record, across a restart; absent stays absent", async () => {
    const policy = { restrict_mode: true, ports: [{ port: 8080, pp: true }] };
    const s = await store();
    await s.register({ ...req(1), portPolicy: policy });
    await s.register(req(2));
    await s.register({ ...req(3), portPolicy: { restrict_mode: false, ports: [] } });
    await s.close();
    const again = await store();
    expect(again.get("inst1")?.portPolicy).toEqual(policy);
    // "Not reported" and "reported empty" stay distinct.
    expect(again.get("inst2")).not.toHaveProperty("portPolicy");
    expect(again.get("inst3")?.portPolicy).toEqual({ restrict_mode: false, ports: [] });
    // A CVM that re-registers reports its policy again: the latest one (or none) counts.
    await again.register(req(1));
    expect(again.get("inst1")).not.toHaveProperty("portPolicy");
    const written = JSON.parse(await readFile(file, "utf8")).instances;
    expect(written.map((r: { portPolicy?: unknown }) => r.portPolicy)).toEqual([
      undefined,
      undefined,
      { restrict_mode: false, ports: [] },
    ]);
  });

  it("keeps an operator's override across re-registration and restart, until cleared", async () => {
    const lockdown = { restrict_mode: true, ports: [] };
    const s = await store();
    const registered = await s.register(req(1));
    const overridden = await s.setPortPolicyOverride("inst1", lockdown);
    expect(overridden).toMatchObject({ ip: registered.ip, portPolicyOverride: lockdown });
    await s.register({ ...req(1), portPolicy: { restrict_mode: false, ports: [] } });
    await s.close();
    const again = await store();
    expect(again.get("inst1")?.portPolicyOverride).toEqual(lockdown);
    await again.setPortPolicyOverride("inst1", undefined);
    expect(again.get("inst1")).not.toHaveProperty("portPolicyOverride");
    await expect(again.setPortPolicyOverride("nope", lockdown)).rejects.toMatchObject({
      code: "E_REGISTRY_UNKNOWN_INSTANCE",
    });
  });

  it("keeps an instance out of rotation across re-registration and restart, until put back", async () => {
    const s = await store();
    const registered = await s.register(req(1));
    expect(registered).not.toHaveProperty("outOfRotation");
    const out = await s.setOutOfRotation("inst1", true);
    expect(out).toMatchObject({ ip: registered.ip, publicKey: registered.publicKey });
    expect(out.outOfRotation).toBe(true);
    await s.register(req(1));
    await s.close();
    const again = await store();
    expect(again.get("inst1")?.outOfRotation).toBe(true);
    await again.setOutOfRotation("inst1", false);
    expect(again.get("inst1")).not.toHaveProperty("outOfRotation");
    expect(JSON.parse(await readFile(file, "utf8")).instances[0]).not.toHaveProperty(
      "outOfRotation",
    );
    await expect(again.setOutOfRotation("nope", true)).rejects.toMatchObject({
      code: "E_REGISTRY_UNKNOWN_INSTANCE",
    });
  });

  it("refuses a stored port policy that is not one", async () => {
    const s = await store();
    await s.register(req(1));
    await s.close();
    const text = await readFile(file, "utf8");
    const bad = JSON.parse(text);
    bad.instances[0].portPolicy = { restrict_mode: "yes", ports: [] };
    await writeFile(file, JSON.stringify(bad));
    await expect(store()).rejects.toMatchObject({ code: "E_STATE_CORRUPT" });
  });

  it("re-registration keeps the IP and registeredAt, takes the new key and frees the old one", async () => {
    let now = 5;
    const s = await store(DEFAULT_PLAN, { now: () => now });
    const first = await s.register(req(1));
    now = 9;
    const second = await s.register({ ...req(1), publicKey: wgKey(100) });
    expect(second).toEqual({ ...first, publicKey: wgKey(100), updatedAt: 9 });
    expect((await s.register({ ...req(2), publicKey: wgKey(1) })).ip).toBe("10.4.0.33");
  });

  it.each([
    [
      "a key held by another instance",
      { ...req(2), publicKey: wgKey(1) },
      "E_REGISTRY_KEY_IN_USE",
      "inst1",
    ],
    ["another app for the same instance", req(1, "app2"), "E_REGISTRY_APP_MISMATCH", "app1"],
    [
      "a key that is not base64",
      { ...req(2), publicKey: "not a key" },
      "E_REGISTRY_BAD_REQUEST",
      "not a key",
    ],
    [
      "a non-canonical spelling of a key",
      { ...req(2), publicKey: `${wgKey(1).slice(0, 42)}B=` },
      "E_REGISTRY_BAD_REQUEST",
      "WireGuard key",
    ],
    [
      "an id with a newline",
      { ...req(2), instanceId: "a\nb" },
      "E_REGISTRY_BAD_REQUEST",
      "instanceId",
    ],
  ])("refuses %s, leaving the state as it was", async (_about, bad, code, says) => {
    let writes = 0;
    const s = await store(DEFAULT_PLAN, { onWrite: () => writes++ });
    await s.register(req(1));
    const bytes = await readFile(file);
    await expect(s.register(bad)).rejects.toMatchObject({
      code,
      message: expect.stringContaining(says),
    });
    expect(s.list()).toHaveLength(1);
    expect(await readFile(file)).toEqual(bytes);
    expect(writes).toBe(1);
  });

  it("a full range is E_REGISTRY_FULL naming the range and its capacity", async () => {
    const s = await store(plan("10.4.0.0/29", "10.4.0.1", ["10.4.0.6/32"]));
    const ips = await Promise.all([1, 2, 3, 4].map((n) => s.register(req(n))));
    expect(ips.map((r) => r.ip)).toEqual(["10.4.0.2", "10.4.0.3", "10.4.0.4", "10.4.0.5"]);
    await expect(s.register(req(5))).rejects.toMatchObject({
      code: "E_REGISTRY_FULL",
      message:
        "no free address in core.wg.client_ip_range 10.4.0.0/29: all 4 allocatable addresses are in use",
    });
    expect(await s.remove("inst3")).toBe(true);
    expect((await s.register(req(5))).ip).toBe("10.4.0.4");
  });

  it("remove resolves false for an unknown instance, without writing", async () => {
    let writes = 0;
    const s = await store(DEFAULT_PLAN, { onWrite: () => writes++ });
    expect(await s.remove("nobody")).toBe(false);
    expect(writes).toBe(0);
  });

  it("list and get show only durable state", async () => {
    const s = await store();
    const pending = s.register(req(1));
    expect(s.get("inst1")).toBeUndefined();
    expect(s.list()).toEqual([]);
    const record = await pending;
    expect(s.get("inst1")).toEqual(record);
    expect(s.list()).toEqual([record]);
  });

  it("group commit: 100 concurrent registrations are one write", async () => {
    const writes: number[] = [];
    const s = await store(DEFAULT_PLAN, { onWrite: (w) => writes.push(w.operations) });
    const records = await Promise.all(
      Array.from({ length: 100 }, async (_, n) => {
        for (let k = n % 7; k > 0; k--) await Promise.resolve(); // spread over microtasks
        return s.register(req(n));
      }),
    );
    expect(writes).toEqual([100]);
    expect(new Set(records.map((r) => r.ip)).size).toBe(100);
  });

  it("group commit: registrations arriving during a write share the next write", async () => {
    const writes: number[] = [];
    const s = await store(DEFAULT_PLAN, { onWrite: (w) => writes.push(w.operations) });
    const all: Promise<unknown>[] = [];
    for (let wave = 0; wave < 10; wave++) {
      for (let n = 0; n < 10; n++) all.push(s.register(req(wave * 10 + n)));
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    expect(writes.reduce((a, b) => a + b, 0)).toBe(100);
    expect(writes.length).toBeLessThanOrEqual(10);
    expect(s.list()).toHaveLength(100);
  });

  it("a failed write rejects its batch with E_STATE_WRITE, keeps the old state and no temp file", async () => {
    const s = await store();
    await s.register(req(1));
    await rm(file);
    await mkdir(join(file, "blocker"), { recursive: true }); // rename onto a non-empty directory fails
    const failing = [s.register(req(2)), s.remove("inst1")];
    for (const p of failing) {
      await expect(p).rejects.toMatchObject({
        code: "E_STATE_WRITE",
        message: expect.stringContaining(file),
      });
    }
    expect(s.list().map((r) => r.instanceId)).toEqual(["inst1"]);
    expect((await readdir(join(dir, "state"))).sort()).toEqual(["registry.json"]);
    await rm(file, { recursive: true });
    expect((await s.register(req(2))).ip).toBe("10.4.0.33");
    await s.close();
    expect((await store()).list().map((r) => r.instanceId)).toEqual(["inst1", "inst2"]);
  });

  it("close waits for accepted operations, then refuses new ones", async () => {
    const s = await store();
    const accepted = s.register(req(1));
    await s.close();
    expect((await accepted).ip).toBe("10.4.0.32");
    await expect(s.register(req(2))).rejects.toMatchObject({ code: "E_STATE_CLOSED" });
    expect((await store()).list()).toHaveLength(1);
  });

  it("removes temp files a crashed writer left, and nothing else", async () => {
    await mkdir(join(dir, "state"), { recursive: true });
    const names = [
      "registry.json.4242.0badcafe.tmp",
      "registry.json.bak",
      "other.json.1.00000000.tmp",
    ];
    for (const name of names) await writeFile(join(dir, "state", name), "x");
    await store();
    expect((await readdir(join(dir, "state"))).sort()).toEqual(names.slice(1).sort());
  });

  it("an unreadable state path is E_STATE_READ", async () => {
    await mkdir(file, { recursive: true });
    await expect(store()).rejects.toMatchObject({
      code: "E_STATE_READ",
      message: expect.stringContaining(file),
    });
  });
});
