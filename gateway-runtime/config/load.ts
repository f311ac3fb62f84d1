import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import type { z } from "zod";
import { formatDuration } from "./duration.js";
import { ConfigError, toProblems } from "./errors.js";
import { type NoEffectKey, noEffectKeysSet } from "./no-effect.js";
import { gatewayConfigSchema, operatorConfigSchema } from "./schema.js";
import { isSecret } from "./secret.js";
import type { GatewayConfig, OperatorConfig } from "./types.js";
import { fieldsOf } from "./walk.js";

export type ConfigFormat = "toml" | "json" | "yaml";

/**
 * The one parse of each side. Its result is typed with the narrowed unions of types.ts: the
 * schema's `checkConfig` has enforced exactly those "required when" rules, so this is where
 * the inferred optional keys become the unions, for every reader at once.
 */
function parse<T>(schema: z.ZodType, raw: unknown, source: string): T {
  const result = schema.safeParse(raw, { reportInput: true });
  if (result.success) return result.data as T;
  throw new ConfigError(source, toProblems(schema, result.error.issues));
}

/** Validates a host's config (what `gateway run` reads); throws ConfigError listing every problem. */
export function parseGatewayConfig(raw: unknown, source: string): GatewayConfig {
  return parse<GatewayConfig>(gatewayConfigSchema, raw, source);
}

/** Validates a stack's `gateway:config`: a host's config less the keys the program generates. */
export function parseOperatorConfig(raw: unknown, source: string): OperatorConfig {
  return parse<OperatorConfig>(operatorConfigSchema, raw, source);
}

export function formatFromPath(path: string): ConfigFormat {
  const ext = extname(path).toLowerCase();
  if (ext === ".toml") return "toml";
  if (ext === ".json") return "json";
  if (ext === ".yaml" || ext === ".yml") return "yaml";
  throw new ConfigError(path, [
    { path: "(file)", message: `unknown config format "${ext}": use .toml, .json, .yaml or .yml` },
  ]);
}

export function syntax(text: string, format: ConfigFormat, source: string): unknown {
  try {
    if (format === "toml") return parseToml(text);
    if (format === "json") return JSON.parse(text);
    return parseYaml(text);
  } catch (error) {
    const message = (error as Error).message.split("\n")[0] ?? String(error);
    throw new ConfigError(source, [
      { path: "(syntax)", message: `not valid ${format.toUpperCase()}: ${message}` },
    ]);
  }
}

export function parseConfigText(text: string, format: ConfigFormat, source: string): GatewayConfig {
  return parseGatewayConfig(syntax(text, format, source), source);
}

export function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [
      { path: "(file)", message: `cannot read: ${(error as Error).message}` },
    ]);
  }
}

export function loadConfigFile(path: string): GatewayConfig {
  return loadConfigFileNoting(path).config;
}

/**
 * The config, and the no-effect keys the file sets. Their presence is read from the file, not
 * from the parsed config: parsing fills in every default, so it cannot tell what was written.
 */
export function loadConfigFileNoting(path: string): {
  config: GatewayConfig;
  noEffect: NoEffectKey[];
} {
  const raw = syntax(readText(path), formatFromPath(path), path);
  return { config: parseGatewayConfig(raw, path), noEffect: noEffectKeysSet(raw) };
}

type Plain = { [key: string]: unknown };

function mapFields(
  config: GatewayConfig,
  schema: z.ZodType,
  convert: (value: unknown, kind: string | undefined) => unknown,
): Plain {
  const out: Plain = {};
  for (const { path, meta } of fieldsOf(schema)) {
    const keys = path.split(".");
    const value = keys.reduce<unknown>((o, k) => (o as Plain | undefined)?.[k], config);
    if (value === undefined) continue;
    const parent = keys.slice(0, -1).reduce<Plain>((o, k) => {
      o[k] ??= {};
      return o[k] as Plain;
    }, out);
    parent[keys[keys.length - 1] as string] = convert(value, meta.kind);
  }
  return out;
}

/** The config as it is written to a file: durations as strings, secrets revealed. For hosts only. */
export function toConfigObject(config: GatewayConfig): Plain {
  return mapFields(config, gatewayConfigSchema, (value, kind) => {
    if (kind === "duration") return formatDuration(value as number);
    return isSecret(value) ? value.reveal() : value;
  });
}

/** The config for people and logs: durations as strings, secrets "[redacted]". */
export function toRedactedObject(config: GatewayConfig): Plain {
  return mapFields(config, gatewayConfigSchema, (value, kind) => {
    if (kind === "duration") return formatDuration(value as number);
    return isSecret(value) ? String(value) : value;
  });
}

export function serializeConfig(config: Plain, format: ConfigFormat): string {
  if (format === "toml") return `${stringifyToml(config)}\n`;
  if (format === "json") return `${JSON.stringify(config, null, 2)}\n`;
  return stringifyYaml(config);
}
