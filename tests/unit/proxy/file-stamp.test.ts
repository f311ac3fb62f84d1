import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { StampPoller, stampOf } from "../../../gateway-runtime/proxy/file-stamp.js";
import { until } from "../../../testkit/poll.js";

const dirs: string[] = [];
const pollers: StampPoller[] = [];
afterEach(() => {
  for (const p of pollers.splice(0)) p.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function files(): [string, string] {
  const dir = mkdtempSync(join(tmpdir(), "stamp-"));
  dirs.push(dir);
  const pair: [string, string] = [join(dir, "cert.pem"), join(dir, "key.pem")];
  for (const f of pair) writeFileSync(f, "one");
  return pair;
}
/** Replaces `file` the way a renewer does: a new inode under the same name. */
function replace(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}
function poll(pair: readonly string[], baseline: string): { changes: () => number } {
  let changes = 0;
  pollers.push(new StampPoller(pair, baseline, 10, () => changes++));
  return { changes: () => changes };
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const changesReach = (n: number, changes: () => number) =>
  until(`${n} change(s) reported`, () => changes() === n, 3000, { everyMs: 5 });

describe("stampOf", () => {
  it("changes when a file is replaced by rename, even with the same contents", async () => {
    const pair = files();
    const before = await stampOf(pair);
    expect(await stampOf(pair)).toBe(before);
    replace(pair[1], "one");
    expect(await stampOf(pair)).not.toBe(before);
  });

  it("names a missing file's error instead of throwing", async () => {
    const pair = files();
    rmSync(pair[0]);
    expect(await stampOf(pair)).toMatch(/^error:ENOENT\|/);
  });
});

describe("StampPoller", () => {
  it("sees a change made before its first poll (the baseline is the caller's)", async () => {
    const pair = files();
    const baseline = await stampOf(pair);
    replace(pair[0], "two"); // before the poller exists: watchFile would take this as its baseline
    const { changes } = poll(pair, baseline);
    await changesReach(1, changes);
  });

  it("reports each change once, and nothing while the files stay put", async () => {
    const pair = files();
    const { changes } = poll(pair, await stampOf(pair));
    await sleep(60);
    expect(changes()).toBe(0);
    replace(pair[0], "two");
    await changesReach(1, changes);
    await sleep(60);
    expect(changes()).toBe(1);
    replace(pair[1], "two");
    await changesReach(2, changes);
  });

  it("sees a file appear, and takes a stamp from seen() as acted on", async () => {
    const pair = files();
    rmSync(pair[0]);
    let changed = 0;
    const missing = await stampOf(pair);
    writeFileSync(pair[0], "back");
    const back = await stampOf(pair);
    // seen() in the same tick as the construction: no poll can run in between
    const poller = new StampPoller(pair, missing, 10, () => changed++);
    pollers.push(poller);
    poller.seen(back);
    await sleep(60);
    expect(changed).toBe(0);
    replace(pair[0], "again");
    await changesReach(1, () => changed);
  });

  it("stops polling after stop()", async () => {
    const pair = files();
    const baseline = await stampOf(pair);
    const { changes } = poll(pair, baseline);
    pollers[0]?.stop();
    replace(pair[0], "two");
    await sleep(60);
    expect(changes()).toBe(0);
  });
});
