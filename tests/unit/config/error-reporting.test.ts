// How a refused config is reported: every problem at once, secrets never shown, syntax errors.
import { describe, expect, it } from "vitest";
import { parseConfigText, parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { withKey } from "../../../testkit/config.js";
import { problemsOf, set } from "./problems.js";

describe("error reporting", () => {
  it("reports every problem at once, field and cross-key checks together", () => {
    const raw = withKey(
      withKey(
        withKey(set("port", 0), "core.proxy.lisen_port", 1),
        "core.wg.client_ip_range",
        "10.9.0.0/20",
      ),
      "core.admin.port",
      443,
    );
    expect(
      problemsOf(raw)
        .map((p) => p.path)
        .sort(),
    ).toEqual(
      ["core.admin.port", "core.proxy.lisen_port", "core.wg.client_ip_range", "port"].sort(),
    );
  });

  it("never shows a secret's value", () => {
    const secretValue = { nested: "s3cr3t-value" };
    const raw = withKey(
      set("core.wg.private_key", secretValue),
      "core.certbot.cf_api_token",
      12345678,
    );
    let message = "";
    try {
      parseGatewayConfig(raw, "test");
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(
      "core.wg.private_key: expected a non-empty secret string (value not shown: secret)",
    );
    expect(message).toContain("core.certbot.cf_api_token:");
    expect(message).not.toContain("s3cr3t-value");
    expect(message).not.toContain("12345678");
  });

  it("formats one message listing each problem with its source", () => {
    expect(() => parseGatewayConfig(set("port", 0), "stacks/Pulumi.us.yaml")).toThrow(
      "invalid gateway config (stacks/Pulumi.us.yaml), 1 problem(s):\n  - port: expected a port number 1-65535, got 0",
    );
  });

  it.each([
    ["toml", "port = = 1"],
    ["json", "{ port: 1 }"],
    ["yaml", "port: [1"],
  ] as const)("names a %s syntax error", (format, text) => {
    expect(() => parseConfigText(text, format, "f")).toThrow(/\(syntax\): not valid/);
  });
});
