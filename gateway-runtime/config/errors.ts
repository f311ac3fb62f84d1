import type { z } from "zod";
import { GatewayError } from "../errors.js";
import { fieldMeta } from "./fields.js";
import { schemaAt, shapeOf } from "./walk.js";

export interface ConfigProblem {
  /** Dotted key path, e.g. `core.proxy.listen_port` or `core.wg.reserved_net[0]`. */
  readonly path: string;
  readonly message: string;
}

/**
 * `E_CONFIG_INVALID`: the config breaks the schema. `E_CONFIG_FILE_MISSING`: it is valid but names
 * a file the gateway reads that will not be on the host (host-files.ts).
 */
export type ConfigErrorCode = "E_CONFIG_INVALID" | "E_CONFIG_FILE_MISSING";

const HEADINGS: Record<ConfigErrorCode, string> = {
  E_CONFIG_INVALID: "invalid gateway config",
  E_CONFIG_FILE_MISSING: "gateway config names files that will not be on the host",
};

/** Every problem of a config at once; `message` is what both `pulumi preview` and the runtime print. */
export class ConfigError extends GatewayError<ConfigErrorCode> {
  readonly problems: readonly ConfigProblem[];

  constructor(
    source: string,
    problems: readonly ConfigProblem[],
    code: ConfigErrorCode = "E_CONFIG_INVALID",
  ) {
    const lines = problems.map((p) => `  - ${p.path}: ${p.message}`);
    super(
      code,
      `${HEADINGS[code]} (${source}), ${problems.length} problem(s):\n${lines.join("\n")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => {
    if (typeof key === "number") return `${out}[${key}]`;
    return out ? `${out}.${String(key)}` : String(key);
  }, "");
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      row[j] = Math.min(
        above + 1,
        (row[j - 1] ?? 0) + 1,
        diagonal + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}

function unknownKeyMessage(schema: z.ZodType, parent: readonly PropertyKey[], key: string): string {
  const known = Object.keys(shapeOf(schemaAt(schema, parent) ?? schema) ?? {});
  const close = known.find((k) => editDistance(k, key) <= 2);
  return close ? `unknown key (did you mean "${close}"?)` : "unknown key";
}

/** Turns zod issues into problems; values of secret keys are never shown. */
export function toProblems(
  schema: z.ZodType,
  issues: readonly z.core.$ZodIssue[],
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        problems.push({
          path: formatPath([...issue.path, key]),
          message: unknownKeyMessage(schema, issue.path, key),
        });
      }
      continue;
    }
    const path = formatPath(issue.path);
    const field = schemaAt(
      schema,
      issue.path.filter((k) => typeof k !== "number"),
    );
    const secret = field !== undefined && fieldMeta.get(field)?.kind === "secret";
    const input = (issue as { input?: unknown }).input;
    if (issue.code === "invalid_key") {
      const inner = issue.issues[0]?.message ?? "invalid key";
      problems.push({ path, message: `${inner}, got ${shown(input)}` });
      continue;
    }
    if (input === undefined && issue.code !== "custom") {
      problems.push({ path, message: "is required" });
    } else if (secret) {
      problems.push({ path, message: `${issue.message} (value not shown: secret)` });
    } else {
      problems.push({
        path,
        message: input === undefined ? issue.message : `${issue.message}, got ${shown(input)}`,
      });
    }
  }
  return problems;
}
