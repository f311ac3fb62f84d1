/**
 * Plans and their differences: pure functions over the recorded resource graph, no I/O.
 * `tools/plan/plan.ts` records plans; this compares two and prints the difference for people.
 */

export interface PlannedResource {
  type: string;
  name: string;
  parent: string | null;
  dependsOn: string[];
  additionalSecretOutputs: string[];
  inputs: Record<string, unknown>;
}
export interface Plan {
  stack: string;
  resources: PlannedResource[];
}

/** `<type>::<name>` of a URN, or of a resource. */
export const keyOf = (r: { type: string; name: string }) => `${r.type}::${r.name}`;

/** One line per leaf: `inputs.create`, `inputs.triggers[0]`, `dependsOn`... */
function leaves(value: unknown, path: string, out: Map<string, string>): Map<string, string> {
  if (value !== null && typeof value === "object" && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) {
      leaves(v, Array.isArray(value) ? `${path}[${k}]` : path ? `${path}.${k}` : k, out);
    }
  } else out.set(path, JSON.stringify(value));
  return out;
}

export interface PlanDiff {
  added: string[];
  removed: string[];
  changed: { resource: string; changes: { path: string; before?: string; after?: string }[] }[];
}

export function diffPlans(before: Plan, after: Plan): PlanDiff {
  const index = (p: Plan) => new Map(p.resources.map((r) => [keyOf(r), r]));
  const [old, now] = [index(before), index(after)];
  const diff: PlanDiff = { added: [], removed: [], changed: [] };
  for (const key of [...new Set([...old.keys(), ...now.keys()])].sort()) {
    const [a, b] = [old.get(key), now.get(key)];
    if (!a) diff.added.push(key);
    else if (!b) diff.removed.push(key);
    else {
      const [la, lb] = [
        leaves({ ...a, type: undefined, name: undefined }, "", new Map()),
        leaves({ ...b, type: undefined, name: undefined }, "", new Map()),
      ];
      const changes = [...new Set([...la.keys(), ...lb.keys()])]
        .sort()
        .filter((p) => la.get(p) !== lb.get(p))
        .map((p) => {
          const [before, after] = [la.get(p), lb.get(p)];
          return {
            path: p,
            ...(before === undefined ? {} : { before }),
            ...(after === undefined ? {} : { after }),
          };
        });
      if (changes.length > 0) diff.changed.push({ resource: key, changes });
    }
  }
  return diff;
}

export const isEmpty = (d: PlanDiff) => d.added.length + d.removed.length + d.changed.length === 0;

const clip = (text = "(none)") => (text.length > 160 ? `${text.slice(0, 157)}...` : text);

/** The removed (`- `) and added (`+ `) lines between two texts (scripts, unit files), in order. */
export function lineDiff(before: string, after: string): string[] {
  const [a, b] = [before.split("\n"), after.split("\n")];
  // Longest common subsequence lengths of the suffixes a[i..] and b[j..], in one flat table.
  const width = b.length + 1;
  const lcs = new Uint32Array((a.length + 1) * width);
  const at = (i: number, j: number) => lcs[i * width + j] ?? 0;
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i * width + j] =
        a[i] === b[j] ? at(i + 1, j + 1) + 1 : Math.max(at(i + 1, j), at(i, j + 1));
    }
  }
  const out: string[] = [];
  let [i, j] = [0, 0];
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) [i, j] = [i + 1, j + 1];
    else if (i < a.length && (j === b.length || at(i + 1, j) >= at(i, j + 1)))
      out.push(`- ${a[i++]}`);
    else out.push(`+ ${b[j++]}`);
  }
  return out;
}

function describeChange(c: { path: string; before?: string; after?: string }): string[] {
  const [a, b] = [c.before, c.after].map((v) => (v === undefined ? undefined : JSON.parse(v)));
  if (typeof a === "string" && typeof b === "string" && (a.includes("\n") || b.includes("\n"))) {
    return [`      ${c.path}: text changed`, ...lineDiff(a, b).map((l) => `        ${l}`)];
  }
  return [`      ${c.path}: ${clip(c.before)} => ${clip(c.after)}`];
}

export function formatDiff(stack: string, diff: PlanDiff): string {
  if (isEmpty(diff)) return `stack ${stack}: no changes\n`;
  const lines = [
    `stack ${stack}: ${diff.added.length} to add, ${diff.changed.length} to change, ${diff.removed.length} to remove`,
    ...diff.added.map((k) => `  + ${k}`),
    ...diff.removed.map((k) => `  - ${k}`),
  ];
  for (const { resource, changes } of diff.changed) {
    lines.push(`  ~ ${resource}`, ...changes.flatMap(describeChange));
  }
  return `${lines.join("\n")}\n`;
}

/** Stable JSON: keys were sorted when recorded. */
