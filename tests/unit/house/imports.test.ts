import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(new URL("../../../", import.meta.url).pathname);
const SKIP = new Set(["node_modules", "dist", "bin", ".lab", ".git", "test-results", ".build"]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (SKIP.has(entry.name)) return [];
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|mts|mjs)$/.test(entry.name) && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

/** Relative imports of a file (static, dynamic and re-exports), as repository paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)];
  return specs.map((m) => relative(ROOT, resolve(dirname(file), m[1] as string)));
}

/**
 * The folder a file belongs to, for the layering rules: a top-level folder, except that the
 * runtime's and the tools' folders (`gateway-runtime/proxy`, `tools/engine`) are each their own,
 * and so is each file at the runtime's top (`main.ts` sits above every folder, `errors.ts`
 * below them all).
 */
function folderOf(path: string): string {
  const parts = path.split("/");
  if (parts.length === 1) return ".";
  if (parts[0] === "gateway-runtime" || parts[0] === "tools") return parts.slice(0, 2).join("/");
  return parts[0] as string;
}

const files = sources(ROOT).map((f) => relative(ROOT, f));
const edges = files.flatMap((from) => importsOf(join(ROOT, from)).map((to) => ({ from, to })));

/** Folder-level cycles, each as a path `a -> b -> a`. */
function folderCycles(): string[] {
  const graph = new Map<string, Set<string>>();
  for (const { from, to } of edges) {
    const a = folderOf(from);
    const b = folderOf(to);
    if (a === b) continue;
    if (!graph.has(a)) graph.set(a, new Set());
    graph.get(a)?.add(b);
  }
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const walk = (node: string, path: string[]): void => {
    state.set(node, "open");
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === "open") {
        cycles.push([...path.slice(path.indexOf(next)), node, next].join(" -> "));
      } else if (!state.has(next)) walk(next, [...path, node]);
    }
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) walk(node, []);
  return cycles;
}

describe("the house: how the folders may import each other", () => {
  it("reads the tree (a guard against a walk that finds nothing)", () => {
    expect(files).toContain("gateway-runtime/main.ts");
    expect(edges.length).toBeGreaterThan(500);
  });

  it("nothing outside tests/ imports from tests/", () => {
    const offenders = edges.filter(
      (e) => !e.from.startsWith("tests/") && e.to.startsWith("tests/"),
    );
    expect(offenders).toEqual([]);
  });

  it("the runtime imports nothing outside gateway-runtime/ (it is bundled on its own)", () => {
    // Except package.json, for its version: the bundler inlines the JSON.
    const offenders = edges.filter(
      (e) =>
        e.from.startsWith("gateway-runtime/") &&
        !e.to.startsWith("gateway-runtime/") &&
        e.to !== "package.json",
    );
    expect(offenders).toEqual([]);
  });

  it("no loops between folders", () => {
    expect(folderCycles()).toEqual([]);
  });

  it("finds a loop when there is one (the check itself)", () => {
    edges.push({ from: "host/files.ts", to: "components/bundle.ts" });
    edges.push({ from: "components/bundle.ts", to: "host/files.ts" });
    try {
      expect(folderCycles().some((c) => c.includes("host") && c.includes("components"))).toBe(true);
    } finally {
      edges.splice(-2, 2);
    }
  });
});
