/**
 * Model-based test: random sequences of registrations (single and concurrent bursts), removals
 * and restarts against a real FileRegistrationStore in a temp dir, checked against a plain Map.
 */
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatIpv4 } from "../../../gateway-runtime/config/net.js";
import { isAllocatable } from "../../../gateway-runtime/registry/allocate.js";
import { FileRegistrationStore } from "../../../gateway-runtime/registry/store.js";
import { allocatableByDefinition, ip, plan, wgKey } from "./net.js";
import { tempDir } from "./temp.js";

// 10.4.0.0/28 minus network, broadcast, gateway .1 and reserved .4-.7: 9 addresses for 12 ids.
const PLAN = plan("10.4.0.0/28", "10.4.0.1", ["10.4.0.4/30"]);
const ALLOCATABLE = allocatableByDefinition(PLAN).map(formatIpv4);

interface Entry {
  ip: string;
  key: string;
  app: string;
}
type Model = Map<string, Entry>;
interface Real {
  store: FileRegistrationStore;
  file: string;
}
interface Req {
  instanceId: string;
  appId: string;
  publicKey: string;
}

/** What registering `r` must do to the model: the error code, or the IP it gets. */
function expectRegister(model: Model, r: Req): { code: string } | { ip: string } {
  const holder = [...model].find(([, e]) => e.key === r.publicKey)?.[0];
  if (holder !== undefined && holder !== r.instanceId) return { code: "E_REGISTRY_KEY_IN_USE" };
  const old = model.get(r.instanceId);
  if (old && old.app !== r.appId) return { code: "E_REGISTRY_APP_MISMATCH" };
  const used = new Set([...model.values()].map((e) => e.ip));
  const ip = old?.ip ?? ALLOCATABLE.find((a) => !used.has(a));
  if (ip === undefined) return { code: "E_REGISTRY_FULL" };
  model.set(r.instanceId, { ip, key: r.publicKey, app: r.appId });
  return { ip };
}

async function checkInvariants(model: Model, real: Real): Promise<void> {
  const list = real.store.list();
  const ips = list.map((r) => r.ip);
  expect(new Set(ips).size).toBe(ips.length);
  for (const a of ips) expect(isAllocatable(PLAN, ip(a))).toBe(true);
  expect(new Set(list.map((r) => r.publicKey)).size).toBe(list.length);
  const seen = Object.fromEntries(
    list.map((r) => [r.instanceId, { ip: r.ip, key: r.publicKey, app: r.appId }]),
  );
  expect(seen).toEqual(Object.fromEntries(model));
}

const reqArb = fc.record({ id: fc.nat(11), key: fc.nat(15), app: fc.nat(1) }).map(
  ({ id, key, app }): Req => ({
    instanceId: `i${id}`,
    appId: `app${app}`,
    publicKey: wgKey(key),
  }),
);

class Burst implements fc.AsyncCommand<Model, Real> {
  constructor(readonly reqs: Req[]) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    // All issued in one tick: one group commit, applied in call order.
    const settled = await Promise.allSettled(this.reqs.map((r) => real.store.register(r)));
    settled.forEach((s, k) => {
      const want = expectRegister(model, this.reqs[k] as Req);
      if ("code" in want)
        expect(s).toMatchObject({ status: "rejected", reason: { code: want.code } });
      else expect(s).toMatchObject({ status: "fulfilled", value: { ip: want.ip } });
    });
    await checkInvariants(model, real);
  }
  toString = () =>
    `burst(${this.reqs.map((r) => `${r.instanceId}/${r.appId}/${r.publicKey.slice(0, 6)}`)})`;
}

class Remove implements fc.AsyncCommand<Model, Real> {
  constructor(readonly id: string) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    expect(await real.store.remove(this.id)).toBe(model.delete(this.id));
    await checkInvariants(model, real);
  }
  toString = () => `remove(${this.id})`;
}

class Restart implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    await real.store.close();
    real.store = await FileRegistrationStore.open(real.file, PLAN);
    await checkInvariants(model, real);
  }
  toString = () => "restart";
}

describe("FileRegistrationStore against a model", () => {
  it("never duplicates or misplaces an address; an instance keeps its IP; state survives restarts", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.commands(
          [
            reqArb.map((r) => new Burst([r])),
            fc.array(reqArb, { minLength: 2, maxLength: 8 }).map((rs) => new Burst(rs)),
            fc.nat(11).map((n) => new Remove(`i${n}`)),
            fc.constant(new Restart()),
          ],
          { maxCommands: 40 },
        ),
        async (cmds) => {
          const { dir, cleanup } = await tempDir();
          const file = join(dir, "registry.json");
          const real: Real = { store: await FileRegistrationStore.open(file, PLAN), file };
          try {
            await fc.asyncModelRun(() => ({ model: new Map(), real }), cmds);
          } finally {
            await real.store.close();
            await cleanup();
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
