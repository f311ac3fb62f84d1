/**
 * A stack file's config as the engine hands it to the program (`PULUMI_CONFIG`): each
 * `<namespace>:<key>` to a string, objects and arrays as JSON, and the list of keys holding
 * secrets. The engine decrypts `secure:` values with the stack's key; nobody holds the key of
 * the committed placeholders, so each becomes a stand-in naming its path, still a secret.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";

export interface StackConfig {
  config: Record<string, string>;
  secretKeys: string[];
}

export function readStackConfig(dir: string, stack: string): StackConfig {
  const doc = parseYaml(readFileSync(join(dir, `Pulumi.${stack}.yaml`), "utf8")) as {
    config?: Record<string, unknown>;
  };
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    let secret = false;
    const standIn = (v: unknown, path: string): unknown => {
      if (v !== null && typeof v === "object" && !Array.isArray(v)) {
        const o = v as Record<string, unknown>;
        if (Object.keys(o).length === 1 && typeof o.secure === "string") {
          secret = true;
          return `stand-in-secret(${path})`;
        }
        return Object.fromEntries(
          Object.entries(o).map(([k, x]) => [k, standIn(x, `${path}.${k}`)]),
        );
      }
      return Array.isArray(v) ? v.map((x, i) => standIn(x, `${path}[${i}]`)) : v;
    };
    const plain = standIn(value, key);
    config[key] = typeof plain === "string" ? plain : JSON.stringify(plain);
    if (secret) secretKeys.push(key);
  }
  return { config, secretKeys };
}
