/** Pure DNS record values for `GatewayDns`: CAA (RFC 8659, RFC 8657) and custom-domain TXT. */

/** CAA issuer domains of well-known ACME CAs, by directory host. */
const KNOWN_CAS: readonly (readonly [RegExp, string])[] = [
  [/(^|\.)letsencrypt\.org$/, "letsencrypt.org"],
  [/(^|\.)pki\.goog$/, "pki.goog"],
  [/^acme\.zerossl\.com$/, "sectigo.com"],
  [/(^|\.)buypass\.(com|no)$/, "buypass.com"],
];

/**
 * The CAA issuer domain of the CA behind an ACME directory URL, e.g. "letsencrypt.org" for
 * Let's Encrypt (production and staging). Unknown CAs need the issuer set explicitly.
 */
export function caaIssuerFor(directoryUrl: string): string {
  const host = new URL(directoryUrl).hostname.toLowerCase();
  const known = KNOWN_CAS.find(([pattern]) => pattern.test(host));
  if (!known) {
    throw new Error(
      `no CAA issuer is known for the ACME directory ${directoryUrl}: set gateway:caaIssuer`,
    );
  }
  return known[1];
}

/** The CAA `issue`/`issuewild` value pinning issuance to one ACME account and to dns-01. */
export function caaValue(issuer: string, accountUrl: string): string {
  if (!/^[a-z0-9.-]+$/.test(issuer)) throw new Error(`bad CAA issuer domain "${issuer}"`);
  if (/[;\s]/.test(accountUrl)) throw new Error(`bad ACME account URL "${accountUrl}"`);
  return `${issuer}; accounturi=${accountUrl}; validationmethods=dns-01`;
}

/**
 * A custom domain's TXT record, `<prefix>.<domain>` = `<app-id>:<port>`; for `*.<parent>` the
 * gateway's wildcard form `<prefix>-wildcard.<parent>`. Cloudflare wants TXT content as quoted
 * character strings; DNS answers carry the text without the quotes.
 */
export function appAddressRecord(
  prefix: string,
  domain: string,
  appId: string,
  port: number,
): { name: string; content: string } {
  if (!/^[0-9a-f]{1,64}$/.test(appId)) throw new Error(`app id "${appId}" must be lowercase hex`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`port ${port} of ${domain} must be 1-65535`);
  }
  const name = domain.startsWith("*.")
    ? `${prefix}-wildcard.${domain.slice(2)}`
    : `${prefix}.${domain}`;
  return { name, content: `"${appId}:${port}"` };
}

/** A resource-name-safe form of a DNS name: `app.example.org` → `app-example-org`. */
export function nameSlug(domain: string): string {
  return domain.replaceAll("*", "wildcard").replaceAll(".", "-");
}
