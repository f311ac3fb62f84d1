// Helpers of the config tests that look at the problems a bad config is refused with.
import { expect } from "vitest";
import { ConfigError, parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";

/** The problems `raw` is refused with; fails the test when it is accepted. */
export function problemsOf(raw: unknown): { path: string; message: string }[] {
  try {
    parseGatewayConfig(raw, "test");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  throw new Error("config was accepted");
}

// The admin API on, as in the seed: its checks only apply then.
export const base = withKey(minimalConfig(), "core.admin.enabled", true);
export const set = (path: string, value: unknown) => withKey(base, path, value);
