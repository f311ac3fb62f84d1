import * as pulumi from "@pulumi/pulumi";
import {
  ConfigError,
  type OperatorConfig,
  type OperatorConfigInput,
  parseOperatorConfig,
  parseSyntax,
  readText,
} from "../gateway-runtime/config/index.js";

/** The stack config key holding the gateway config: `gateway:config` in `stacks/Pulumi.<stack>.yaml`. */
export const STACK_CONFIG_KEY = "gateway:config";

/**
 * Validates a stack's gateway config with the operator's schema: the runtime's schema less the
 * keys the program generates for each host (a stack that sets one is refused, naming it).
 * A bad config ends the program with a RunError, so `pulumi preview` prints the same problem
 * list as `gateway check-config`, without a stack trace.
 */
export function operatorConfig(raw: unknown, source: string): OperatorConfig {
  try {
    return parseOperatorConfig(raw, source);
  } catch (error) {
    if (error instanceof ConfigError) throw new pulumi.RunError(error.message);
    throw error;
  }
}

/** The running stack's `gateway:config`, as written: `GatewayRegion` validates it. */
export function readStackGatewayConfig(): OperatorConfigInput {
  return new pulumi.Config("gateway").requireObject<OperatorConfigInput>("config");
}

/** Reads and validates `gateway:config` from a stack file offline (secrets stay `{secure}`, unrevealable). */
export function loadStackFile(stackFile: string): OperatorConfig {
  const doc = parseSyntax(readText(stackFile), "yaml", stackFile) as {
    config?: Record<string, unknown>;
  } | null;
  const raw = doc?.config?.[STACK_CONFIG_KEY];
  if (raw === undefined) {
    throw new ConfigError(stackFile, [
      { path: STACK_CONFIG_KEY, message: "is required in the stack's config" },
    ]);
  }
  return parseOperatorConfig(raw, `${stackFile} ${STACK_CONFIG_KEY}`);
}
