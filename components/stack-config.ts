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

/** Keys the program fills for every host; a stack that sets them is refused, not silently overridden. */
export const PROGRAM_FILLED_KEYS = [
  ...GENERATED_KEYS,
  "core.certbot.account_url",
  "core.certbot.account_key",
] as const;

/** The program-filled keys a raw stack config sets anyway. */
export function programKeysSetByStack(raw: unknown): string[] {
  return PROGRAM_FILLED_KEYS.filter((path) => {
    const value = path
      .split(".")
      .reduce<unknown>(
        (node, key) =>
          node !== null && typeof node === "object"
            ? (node as Record<string, unknown>)[key]
            : undefined,
        raw,
      );
    return value !== undefined;
  });
}

/**
 * The running stack's gateway config. A bad config ends the program with a RunError, so
 * `pulumi preview` prints the same problem list as `gateway check-config`, without a stack trace.
 */
export function readGatewayConfig(): GatewayConfig {
  const raw = new pulumi.Config("gateway").requireObject<unknown>("config");
  const source = `stack ${pulumi.getStack()} ${STACK_CONFIG_KEY}`;
  let config: GatewayConfig;
  try {
    config = parseStackConfig(raw, source);
  } catch (error) {
    if (error instanceof ConfigError) throw new pulumi.RunError(error.message);
    throw error;
  }
  const filled = programKeysSetByStack(raw);
  if (filled.length > 0) {
    throw new pulumi.RunError(
      `invalid gateway config (${source}): the program generates ${filled.join(", ")} for each host; remove them from the stack`,
    );
  }
  return config;
}
