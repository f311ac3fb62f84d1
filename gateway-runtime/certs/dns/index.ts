import type { EnabledCertbot } from "../../config/index.js";
import { CloudflareProvider } from "./cloudflare.js";
import type { DnsProvider } from "./provider.js";
import { Rfc2136Provider } from "./rfc2136/provider.js";

export { CloudflareProvider, type CloudflareOptions, unquoteTxtContent } from "./cloudflare.js";
export {
  type CaaRecord,
  type DnsCallOptions,
  type DnsProvider,
  inZone,
  normalizeName,
  sameCaa,
} from "./provider.js";
export { Rfc2136Provider, type Rfc2136Options } from "./rfc2136/provider.js";

type Certbot = EnabledCertbot;

export interface DnsProviderOverrides {
  /** Cloudflare API base URL (tests point it at a local fake). */
  readonly cloudflareBaseURL?: string;
}

/** The provider `core.certbot.dns_provider` names, built from the certbot config. */
export function createDnsProvider(
  certbot: Certbot,
  baseDomain: string,
  overrides: DnsProviderOverrides = {},
): DnsProvider {
  if (certbot.dns_provider === "cloudflare") {
    return new CloudflareProvider({
      apiToken: certbot.cf_api_token.reveal(),
      zoneId: certbot.cf_zone_id,
      ...(overrides.cloudflareBaseURL ? { baseURL: overrides.cloudflareBaseURL } : {}),
    });
  }
  const r = certbot.rfc2136;
  return new Rfc2136Provider({
    server: r.server,
    zone: r.zone ?? baseDomain,
    keyName: r.tsig_key_name,
    algorithm: r.tsig_algorithm,
    secret: r.tsig_secret.reveal(),
  });
}
