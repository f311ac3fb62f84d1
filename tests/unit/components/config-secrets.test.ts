/**
 * Secrets of gateway:config given as GatewayRegion args (Inputs, from other resources): the
 * config is validated with them present before their values are known, and with the values
 * after; a key given both ways is refused rather than one of them silently ignored.
 */
import { describe, expect, it } from "vitest";
import { operatorConfig } from "../../../components/stack-config.js";
import { givenSecrets, withSecrets } from "../../../components/config-secrets.js";

const raw = {
  core: {
    rpc_domain: "gateway.example.com",
    proxy: { base_domain: "app.example.com" },
    certbot: { contact_email: "ops@example.com", cf_zone_id: "0123456789abcdef" },
    attestation: { mode: "tdx", pccs_url: "https://pccs.example.com" },
    auth: { url: "https://kms.example.com/app-auth" },
  },
};

describe("secrets as GatewayRegion args", () => {
  it("without the Cloudflare token the config is refused; given as an arg it passes, unknown", () => {
    expect(() => operatorConfig(raw, "t")).toThrow(/cf_api_token/);
    const given = givenSecrets({ cloudflareApiToken: "x", adminAuthToken: undefined });
    expect(given).toEqual(["cloudflareApiToken"]);
    const config = operatorConfig(withSecrets(raw, given, {}, "t"), "t");
    expect(config.core.certbot.cf_api_token?.encrypted).toBe(true);
  });

  it("with the values known, each lands at its key; the caller's object is left alone", () => {
    const given = givenSecrets({ cloudflareApiToken: "x", adminAuthToken: "y" });
    const values = {
      cloudflareApiToken: "cf-token",
      adminAuthToken: "a-token-of-32-characters-at-least",
    };
    const config = operatorConfig(withSecrets(raw, given, values, "t"), "t");
    expect(config.core.certbot.cf_api_token?.reveal()).toBe("cf-token");
    expect(config.core.admin.auth_token?.reveal()).toBe(values.adminAuthToken);
    expect(raw.core).not.toHaveProperty("admin");
    expect(raw.core.certbot).not.toHaveProperty("cf_api_token");
  });

  it("a key set in the config and as an arg is refused", () => {
    const both = {
      core: { ...raw.core, certbot: { ...raw.core.certbot, cf_api_token: "in-config" } },
    };
    expect(() => withSecrets(both, ["cloudflareApiToken"], {}, "region r config")).toThrow(
      "region r config: core.certbot.cf_api_token is set both in the config and as cloudflareApiToken; give it once",
    );
  });
});
