/**
 * Property values as they cross the engine's gRPC boundary: plain JSON plus Pulumi's special
 * objects (secrets, assets) marked by a signature key, and the unknown sentinel of previews.
 * Pure functions; the constants are the SDK's own (`@pulumi/pulumi/runtime/rpc`).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";

export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
export const ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17";
export const ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7";
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export type Value = null | boolean | number | string | Value[] | { [key: string]: Value };
export type Props = Record<string, Value>;

const isObject = (v: unknown): v is Record<string, Value> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

export const isSecret = (v: unknown): v is { value: Value } =>
  isObject(v) && v[SIG_KEY] === SECRET_SIG;
export const isAsset = (v: unknown): v is Record<string, Value> =>
  isObject(v) && (v[SIG_KEY] === ASSET_SIG || v[SIG_KEY] === ARCHIVE_SIG);

export const secret = (value: Value): Value => ({ [SIG_KEY]: SECRET_SIG, value });

/** True when the value holds a secret anywhere inside. */
export function containsSecret(v: Value): boolean {
  if (isSecret(v)) return true;
  if (Array.isArray(v)) return v.some(containsSecret);
  if (isObject(v)) return Object.values(v).some(containsSecret);
  return false;
}

/** True when the value holds the preview's unknown sentinel anywhere inside. */
export function containsUnknown(v: Value): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(containsUnknown);
  if (isObject(v)) return Object.values(v).some(containsUnknown);
  return false;
}

/** The value with every secret replaced by its plain content (what a provider that does not accept secrets gets). */
export function reveal(v: Value): Value {
  if (isSecret(v)) return reveal(v.value);
  if (Array.isArray(v)) return v.map(reveal);
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reveal(x)]));
  return v;
}

export function revealProps(props: Props): Props {
  return reveal(props) as Props;
}

/**
 * Outputs as the engine hands them back to the program: a top-level property is a secret when
 * the program listed it in `additionalSecretOutputs` or its input was secret, as the engine does
 * for providers that do not keep secrets themselves.
 */
export function markSecrets(outputs: Props, inputs: Props, additional: readonly string[]): Props {
  const out: Props = {};
  for (const [key, value] of Object.entries(outputs)) {
    const wasSecret = inputs[key] !== undefined && containsSecret(inputs[key]);
    out[key] = (additional.includes(key) || wasSecret) && !isSecret(value) ? secret(value) : value;
  }
  return out;
}

/** Deep equality of two JSON values (key order ignored). */
export function equal(a: Value | undefined, b: Value | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].every((k) => equal(a[k], b[k]));
  }
  return false;
}

/** Top-level keys whose values differ (secrets compared by content, as the engine does). */
export function changedKeys(olds: Props, news: Props): string[] {
  const keys = [...new Set([...Object.keys(olds), ...Object.keys(news)])].sort();
  return keys.filter((k) => !equal(reveal(olds[k] ?? null), reveal(news[k] ?? null)));
}

/**
 * Gives a file asset the `hash` the engine records with it (sha256 of its content), with a
 * relative path resolved from the program's working directory, as the engine does.
 */
export function hashAssets(v: Value, pwd: string): Value {
  if (isAsset(v) && typeof v.path === "string") {
    const path = isAbsolute(v.path) ? v.path : join(pwd, v.path);
    const hash = createHash("sha256").update(readFileSync(path)).digest("hex");
    return { ...v, hash };
  }
  if (isSecret(v)) return secret(hashAssets(v.value, pwd));
  if (Array.isArray(v)) return v.map((x) => hashAssets(x, pwd));
  if (isObject(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, hashAssets(x, pwd)]));
  }
  return v;
}
