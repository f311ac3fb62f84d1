/** A worker whose primary went waits for the next generation's ready file (workers/next-generation.ts). */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nextGeneration } from "../../../gateway-runtime/workers/next-generation.js";

const dir = mkdtempSync(join(tmpdir(), "gw-next-gen-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text?: string) => {
  const path = join(dir, name);
  if (text !== undefined) writeFileSync(path, text);
  return path;
};

describe("nextGeneration", () => {
  it("is ready once the file names another pid, not while it names the old primary", async () => {
    const readyFile = file("a", "100\n");
    const waiting = nextGeneration({ readyFile, previousPid: 100, timeoutMs: 5000, everyMs: 10 });
    let settled = false;
    void waiting.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false);
    writeFileSync(readyFile, "200\n");
    expect(await waiting).toBe("ready");
  });

  it("waits through a missing or empty file", async () => {
    const readyFile = file("b");
    const waiting = nextGeneration({ readyFile, previousPid: 100, timeoutMs: 5000, everyMs: 10 });
    await new Promise((r) => setTimeout(r, 50));
    writeFileSync(readyFile, "");
    await new Promise((r) => setTimeout(r, 50));
    writeFileSync(readyFile, "300");
    expect(await waiting).toBe("ready");
  });

  it("gives up after its timeout, and stops when aborted", async () => {
    const readyFile = file("c", "100\n");
    const started = Date.now();
    const opts = { readyFile, previousPid: 100, everyMs: 10 };
    expect(await nextGeneration({ ...opts, timeoutMs: 200 })).toBe("timeout");
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    expect(await nextGeneration({ ...opts, signal: abort.signal })).toBe("aborted");
  });
});
