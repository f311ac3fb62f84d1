import { gatewayConfigSchema } from "./schema.js";
import { fieldsOf } from "./walk.js";

/** A dstack key this runtime accepts but does not act on, and why (`noEffect` in schema.ts). */
export interface NoEffectKey {
  readonly path: string;
  readonly reason: string;
}

/** Every no-effect key of the schema, in declaration order. */
export function noEffectKeys(): NoEffectKey[] {
  return fieldsOf(gatewayConfigSchema).flatMap(({ path, meta }) =>
    meta.noEffect === undefined ? [] : [{ path, reason: meta.noEffect }],
  );
}

/**
 * The no-effect keys a config file sets: present in it, whatever the value. The value does not
 * matter because the key does nothing either way, so the remedy is always to delete the line;
 * and a default for such a key is arbitrary (`run_in_dstack = false`, the true statement here,
 * would warn under "non-default only" while `true` stayed silent).
 */
export function noEffectKeysSet(raw: unknown): NoEffectKey[] {
  return noEffectKeys().filter(({ path }) => {
    let node: unknown = raw;
    for (const key of path.split(".")) {
      if (node === null || typeof node !== "object" || !Object.hasOwn(node, key)) return false;
      node = (node as Record<string, unknown>)[key];
    }
    return node !== undefined;
  });
}

/** One line for a log or a note: the key, and why it does nothing. */
export function noEffectMessage(key: NoEffectKey): string {
  return `${key.path} has no effect: ${key.reason}`;
}

/** A plain config object without its no-effect keys: what the program writes to a host. */
export function withoutNoEffectKeys<T extends Record<string, unknown>>(config: T): T {
  const copy = structuredClone(config);
  for (const { path } of noEffectKeys()) {
    const keys = path.split(".");
    const parent = keys
      .slice(0, -1)
      .reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], copy);
    if (parent !== null && typeof parent === "object") {
      delete (parent as Record<string, unknown>)[keys[keys.length - 1] as string];
    }
  }
  return copy;
}
