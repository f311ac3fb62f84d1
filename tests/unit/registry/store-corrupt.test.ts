import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileRegistrationStore } from "../../../gateway-runtime/registry/store.js";
import { DEFAULT_PLAN, plan, wgKey } from "./net.js";
import { tempDir } from "./temp.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(() => cleanup());

const rec = (
  id: string,
  ip: string,
  key = wgKey(id.length * 1000 + id.charCodeAt(id.length - 1)),
) => ({
  instanceId: id,
  appId: "app1",
  publicKey: key,
  ip,
  registeredAt: 1,
  updatedAt: 2,
});
const doc = (...instances: unknown[]) => JSON.stringify({ version: 1, instances });

/** Opens `text` as a state file; expects E_STATE_CORRUPT saying `says`, and the bytes untouched. */
async function expectCorrupt(text: string, says: string, p = DEFAULT_PLAN) {
  const file = join(dir, "registry.json");
  await writeFile(file, text, { mode: 0o600 });
  const before = await stat(file);
  const error = await FileRegistrationStore.open(file, p).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toMatchObject({ name: "GatewayError", code: "E_STATE_CORRUPT" });
  const message = (error as Error).message;
  expect(message).toContain(file);
  expect(message).toContain(says);
  expect(await readFile(file, "utf8")).toBe(text);
  expect((await stat(file)).mtimeMs).toBe(before.mtimeMs);
  expect(await readdir(dir)).toEqual(["registry.json"]);
  return message;
}

describe("a state file that cannot be used stops open with E_STATE_CORRUPT", () => {
  it.each([
    ["garbage", "\u0000\u0001not json at all", "not valid JSON"],
    ["an empty file", "", "not valid JSON"],
    ["a truncated file", doc(rec("a", "10.4.0.32")).slice(0, 40), "not valid JSON"],
    ["a newer version", JSON.stringify({ version: 2, instances: [] }), "version 2"],
    ["no version", JSON.stringify({ instances: [] }), "version undefined"],
    ["a bare array", "[]", "version undefined"],
    ["null", "null", "version undefined"],
    ["instances not a list", JSON.stringify({ version: 1, instances: {} }), "instances"],
    [
      "a record missing its IP",
      doc({ ...rec("a", "10.4.0.32"), ip: undefined }),
      "instances[0].ip",
    ],
    ["a record with an unknown field", doc({ ...rec("a", "10.4.0.32"), port: 1 }), "port"],
    ["a negative time", doc({ ...rec("a", "10.4.0.32"), updatedAt: -1 }), "instances[0].updatedAt"],
    ["an IP that is not IPv4", doc(rec("a", "10.4.0.32.1")), 'instance a has IP "10.4.0.32.1"'],
    ["a non-canonical IP", doc(rec("a", "10.4.0.032")), 'instance a has IP "10.4.0.032"'],
    [
      "a key that is not a WireGuard key",
      doc(rec("a", "10.4.0.32", "abc")),
      "instance a has public key",
    ],
    [
      "a duplicate IP",
      doc(rec("a", "10.4.0.32"), rec("b", "10.4.0.32")),
      "instances a and b share IP 10.4.0.32",
    ],
    [
      "a duplicate key",
      doc(rec("a", "10.4.0.32", wgKey(7)), rec("b", "10.4.0.33", wgKey(7))),
      `instances a and b share public key ${wgKey(7)}`,
    ],
    [
      "a duplicate instance",
      doc(rec("a", "10.4.0.32"), { ...rec("a", "10.4.0.33"), publicKey: wgKey(9) }),
      "instance a appears twice",
    ],
    [
      "the gateway's IP",
      doc(rec("gw", "10.4.0.1")),
      "instance gw has IP 10.4.0.1, which 10.4.0.0/20 never hands out",
    ],
    ["a reserved IP", doc(rec("r", "10.4.0.20")), "instance r has IP 10.4.0.20, which"],
    ["the broadcast address", doc(rec("b", "10.4.15.255")), "instance b has IP 10.4.15.255, which"],
  ])("%s", async (_about, text, says) => {
    await expectCorrupt(text, says);
  });

  it("a shrunken client_ip_range names the instance left outside (no silent drop)", async () => {
    const file = join(dir, "registry.json");
    const s = await FileRegistrationStore.open(file, DEFAULT_PLAN);
    for (let n = 0; n < 300; n++)
      await s.register({ instanceId: `i${n}`, appId: "a", publicKey: wgKey(n) });
    await s.remove("i223"); // 10.4.0.255, the broadcast address of the smaller range
    await s.close();
    const text = await readFile(file, "utf8");
    const message = await expectCorrupt(
      text,
      "instance i224 has IP 10.4.1.0, outside core.wg.client_ip_range 10.4.0.0/24",
      plan("10.4.0.0/24", "10.4.0.1", ["10.4.0.0/27"]),
    );
    expect(message).toContain("did the WireGuard config change?");
  });

  it("stray temp files are removed even when the state file is refused", async () => {
    await writeFile(join(dir, "registry.json.1.deadbeef.tmp"), "partial");
    await expectCorrupt("{", "not valid JSON");
  });
});
