import type { z } from "zod";
import { type FieldMeta, fieldMeta } from "./fields.js";

/** Introspection of the config schema: the reference table, error redaction and serialization share it. */
type Def = {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  defaultValue?: unknown;
};

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The object shape under any default/optional/pipe wrappers, if the schema is an object. */
export function shapeOf(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let current: z.ZodType | undefined = schema;
  while (current) {
    const def = defOf(current);
    if (def.type === "object") return def.shape;
    current = def.innerType ?? def.in;
  }
  return undefined;
}

/** The default a key takes when absent, as written in a config file (durations as strings). */
export function defaultOf(schema: z.ZodType): unknown {
  const def = defOf(schema);
  if (def.type === "default" || def.type === "prefault") {
    return typeof def.defaultValue === "function"
      ? (def.defaultValue as () => unknown)()
      : def.defaultValue;
  }
  return undefined;
}

/** True for keys that may be absent (needed only when their feature is enabled). */
export function isOptional(schema: z.ZodType): boolean {
  return defOf(schema).type === "optional";
}

export interface Field {
  readonly path: string;
  readonly schema: z.ZodType;
  readonly meta: FieldMeta;
}

/** Every leaf key of the schema, in declaration order, with its dotted path. */
export function fieldsOf(schema: z.ZodType, prefix = ""): Field[] {
  const shape = shapeOf(schema);
  if (!shape) return [];
  return Object.entries(shape).flatMap(([key, child]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    const meta = fieldMeta.get(child);
    return meta ? [{ path, schema: child, meta }] : fieldsOf(child, path);
  });
}

/** The schema of a dotted path's object, e.g. "core.proxy" → the proxy section. */
export function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = schema;
  for (const key of path) {
    current = current ? shapeOf(current)?.[String(key)] : undefined;
  }
  return current;
}
