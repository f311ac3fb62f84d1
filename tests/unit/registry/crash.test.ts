/**
 * Crash safety: a writer process is SIGKILLed at random moments, again and again, on the same
 * state file. Every change it acknowledged must be there afterwards, with unique addresses.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FileRegistrationStore } from "../../../gateway-runtime/registry/store.js";
import { DEFAULT_PLAN } from "./net.js";
import { tempDir } from "./temp.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const WRITER = new URL("crash-writer.ts", import.meta.url).pathname;
const RUNS = 20;

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
});

/** What the writer's acknowledged lines say must hold: the instance's IP, absent, or unknown. */
type Expect = { ip: string } | "absent" | "unknown";

/** Resolves when `predicate` holds for the output so far; rejects after `ms` or on exit. */
function waitFor(
  child: ChildProcess,
  output: () => string,
  predicate: (out: string) => boolean,
  ms: number,
) {
  return new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      child.stdout?.off("data", check);
      child.off("exit", exited);
      if (error) reject(error);
      else resolve();
    };
    const check = () => predicate(output()) && done();
    const exited = () => done(new Error("writer exited before it had done its work"));
    const timer = setTimeout(() => done(new Error(`writer not there after ${ms} ms`)), ms);
    child.stdout?.on("data", check);
    child.once("exit", exited);
    check();
  });
}

/**
 * One writer run: start it, let it acknowledge `lines` changes, then SIGKILL it `extraMs` later
 * (mid-write, most of the time). Counting acknowledgements rather than time keeps every run
 * doing work however slow the machine's fsync is.
 */
async function runAndKill(
  file: string,
  run: number,
  lines: number,
  extraMs: number,
): Promise<string[]> {
  // Node itself with the tsx loader, not the tsx CLI: the CLI runs the script in a grandchild
  // that a SIGKILL of the CLI would leave running.
  const child = spawn(process.execPath, ["--import", "tsx", WRITER, file, String(run)], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const closed = once(child, "close");
  try {
    await waitFor(
      child,
      () => stdout,
      (out) => out.startsWith("ready\n") && out.split("\n").length - 2 >= lines,
      20_000,
    );
    await new Promise((r) => setTimeout(r, extraMs));
  } catch (err) {
    throw new Error(`run ${run}: ${(err as Error).message}\n${stderr}`);
  } finally {
    child.kill("SIGKILL");
    // Bounded: stdio closes when the child and anything holding its pipes are gone.
    const timeout = setTimeout(() => {
      child.stdout.destroy();
      child.stderr.destroy();
    }, 5_000);
    await closed;
    clearTimeout(timeout);
    children.delete(child);
  }
  expect(child.signalCode, `run ${run} died by itself:\n${stderr}`).toBe("SIGKILL");
  // Only complete lines: a line cut by the kill acknowledges nothing.
  return stdout.split("\n").slice(1, -1);
}

describe("crash safety", () => {
  it(`every acknowledged change survives ${RUNS} SIGKILLs at random moments`, async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = join(dir, "registry.json");
      const expected = new Map<string, Expect>();
      let acknowledged = 0;
      for (let run = 0; run < RUNS; run++) {
        const lines = await runAndKill(
          file,
          run,
          Math.floor(Math.random() * 30),
          Math.floor(Math.random() * 20),
        );
        for (const line of lines) {
          const [what, id = "", ip = ""] = line.split(" ");
          const before = expected.get(id);
          if (what === "registered") {
            // An instance keeps its address across re-registrations, also across crashes.
            if (before !== undefined && typeof before === "object") expect(ip, id).toBe(before.ip);
            expected.set(id, { ip });
          } else if (what === "removing") expected.set(id, "unknown");
          else if (what === "removed") expected.set(id, "absent");
          else throw new Error(`unexpected line from the writer: ${line}`);
          acknowledged++;
        }
      }
      const store = await FileRegistrationStore.open(file, DEFAULT_PLAN);
      await store.close();
      expect(await readdir(dir)).toEqual(["registry.json"]);
      const ips = store.list().map((r) => r.ip);
      expect(new Set(ips).size).toBe(ips.length);
      for (const [id, want] of expected) {
        if (want === "unknown") continue;
        expect(store.get(id)?.ip, id).toBe(want === "absent" ? undefined : want.ip);
      }
      // The test only means something if the writers got work done between kills.
      expect(acknowledged).toBeGreaterThan(RUNS * 8);
    } finally {
      await cleanup();
    }
  }, 120_000);
});
