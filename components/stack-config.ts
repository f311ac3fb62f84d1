import * as pulumi from "@pulumi/pulumi";
import {
  ConfigError,
  type GatewayConfig,
  parseGatewayConfig,
  parseSyntax,
  readText,
} from "../gateway-runtime/config/index.js";
import { generateWgKeyPair } from "../gateway-runtime/wg/keys.js";

/** The stack config key holding the gateway config: `gateway:config` in `stacks/Pulumi.<stack>.yaml`. */
export const STACK_CONFIG_KEY = "gateway:config";

/**
 * Keys the Pulumi program generates per host or per region. A stack leaves them out; until the
 * real values exist they are validated with stand-ins, which are never deployed.
 */
export const GENERATED_KEYS = [
  "core.wg.private_key",
  "core.wg.public_key",
  "core.wg.endpoint",
] as const;

const standIns = (() => {
  const keys = generateWgKeyPair();
  return {
    "core.wg.private_key": keys.privateKey,
    "core.wg.public_key": keys.publicKey,
    "core.wg.endpoint": "192.0.2.1:51820",
  };
})();

function withStandIns(raw: unknown): unknown {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return raw;
  const copy = structuredClone(raw) as Record<string, unknown>;
  for (const path of GENERATED_KEYS) {
    const keys = path.split(".");
    let node: Record<string, unknown> = copy;
    for (const key of keys.slice(0, -1)) {
      const next = node[key];
      if (next !== undefined && (next === null || typeof next !== "object")) return copy;
      node[key] ??= {};
      node = node[key] as Record<string, unknown>;
    }
    const last = keys[keys.length - 1] as string;
    node[last] ??= standIns[path];
  }
  return copy;
}

/** Validates a stack's `gateway:config` object with the runtime's schema. */
export function parseStackConfig(raw: unknown, source: string): GatewayConfig {
  return parseGatewayConfig(withStandIns(raw), source);
}

/** Reads and validates `gateway:config` from a stack file offline (secrets stay `{secure}`, unrevealable). */
export function loadStackFile(stackFile: string): GatewayConfig {
  const doc = parseSyntax(readText(stackFile), "yaml", stackFile) as {
    config?: Record<string, unknown>;
  } | null;
  const raw = doc?.config?.[STACK_CONFIG_KEY];
  if (raw === undefined) {
    throw new ConfigError(stackFile, [
      { path: STACK_CONFIG_KEY, message: "is required in the stack's config" },
    ]);
  }
  return parseStackConfig(raw, `${stackFile} ${STACK_CONFIG_KEY}`);
}

/**
 * The running stack's gateway config. A bad config ends the program with a RunError, so
 * `pulumi preview` prints the same problem list as `gateway check-config`, without a stack trace.
 */
export function readGatewayConfig(): GatewayConfig {
  const raw = new pulumi.Config("gateway").requireObject<unknown>("config");
  try {
    return parseStackConfig(raw, `stack ${pulumi.getStack()} ${STACK_CONFIG_KEY}`);
  } catch (error) {
    if (error instanceof ConfigError) throw new pulumi.RunError(error.message);
    throw error;
  }
}
