/**
 * What the engine does with one registered resource, decided as Pulumi's step generator does:
 * no previous state → create; otherwise the provider's Diff says whether anything changed and
 * which properties force a replacement, the program's `replaceOnChanges` adds to that, and a
 * provider that does not know ("unknown") is answered by comparing old and new inputs.
 * Pure: no I/O.
 */
import type { DiffResult } from "./providers/types.js";
import { changedKeys, type Props } from "./values.js";

/** `delete-replaced`: the old resource of a replacement, deleted once its successor exists. */
export type Operation = "create" | "same" | "update" | "replace" | "delete" | "delete-replaced";

export interface StepDecision {
  op: Exclude<Operation, "delete">;
  /** Top-level properties that differ from the last run. */
  keys: string[];
  /** Properties that force the replacement. */
  replaceKeys: string[];
  deleteBeforeReplace: boolean;
}

/** `replaceOnChanges` paths match a changed top-level key by their first segment (`triggers[0]` → `triggers`); `*` matches all. */
function matches(paths: readonly string[], key: string): boolean {
  return paths.some((p) => p === "*" || p.split(/[.[]/)[0] === key);
}

export function decide(args: {
  oldInputs: Props | undefined;
  news: Props;
  diff: DiffResult | undefined;
  replaceOnChanges: readonly string[];
  deleteBeforeReplace: boolean;
}): StepDecision {
  const { oldInputs, news, diff } = args;
  if (oldInputs === undefined || diff === undefined) {
    return { op: "create", keys: [], replaceKeys: [], deleteBeforeReplace: false };
  }
  const keys = changedKeys(oldInputs, news);
  const changed = diff.changes === "unknown" ? keys.length > 0 : diff.changes === "some";
  const replaceKeys = [
    ...new Set([...diff.replaces, ...keys.filter((k) => matches(args.replaceOnChanges, k))]),
  ].sort();
  const deleteBeforeReplace = args.deleteBeforeReplace || diff.deleteBeforeReplace;
  if (replaceKeys.length > 0) return { op: "replace", keys, replaceKeys, deleteBeforeReplace };
  return {
    op: changed ? "update" : "same",
    keys: changed ? keys : [],
    replaceKeys: [],
    deleteBeforeReplace,
  };
}

/** Old resources in the order they are deleted: every resource before the ones it depends on or is parented to. */
export function deletionOrder<T extends { urn: string; parent: string; dependencies: string[] }>(
  resources: readonly T[],
): T[] {
  // By entry, not by URN: a replaced resource's old copies share its URN.
  const remaining = new Set(resources);
  const ordered: T[] = [];
  while (remaining.size > 0) {
    const needed = new Set<string>();
    for (const r of remaining) {
      for (const d of [r.parent, ...r.dependencies]) if (d !== r.urn) needed.add(d);
    }
    const free = [...remaining].filter((r) => !needed.has(r.urn));
    // A cycle cannot come from a program (dependencies point backwards); break it rather than loop.
    const next = free.length > 0 ? free : [...remaining].slice(-1);
    for (const r of next.reverse()) {
      ordered.push(r);
      remaining.delete(r);
    }
  }
  return ordered;
}
