import {
  type GatewayConfig,
  parseGatewayConfig,
  serializeConfig,
  toConfigObject,
} from "../gateway-runtime/config/index.js";

/** What the program generates for one host and writes into its config. */
export interface GeneratedValues {
  readonly wgPrivateKey: string;
  readonly wgPublicKey: string;
  /** `<host address>:<core.wg.listen_port>`. */
  readonly wgEndpoint: string;
  /** The region's ACME account, when `core.certbot.enabled`. */
  readonly acmeAccountUrl?: string;
  readonly acmeAccountKey?: string;
  /** Path of the extra CA file on the host, when the stack trusts a private ACME CA. */
  readonly acmeCaFile?: string;
  /** Path of the CVM client CA on the host, when the stack ships one (attestation mode "ca"). */
  readonly attestationCaFile?: string;
}

type Plain = Record<string, unknown>;

function section(obj: Plain, ...keys: string[]): Plain {
  let node = obj;
  for (const key of keys) {
    node[key] ??= {};
    node = node[key] as Plain;
  }
  return node;
}

/**
 * The config one host runs: the stack's validated config with the generated values filled in,
 * validated again with the runtime's schema (so a key pair that does not match, or a bad
 * endpoint, fails the deployment instead of the gateway). Secrets are revealed: for hosts only.
 */
export function hostConfigObject(config: GatewayConfig, values: GeneratedValues, source: string) {
  const obj = toConfigObject(config);
  const wg = section(obj, "core", "wg");
  wg.private_key = values.wgPrivateKey;
  wg.public_key = values.wgPublicKey;
  wg.endpoint = values.wgEndpoint;
  const certbot = section(obj, "core", "certbot");
  if (values.acmeAccountUrl !== undefined) certbot.account_url = values.acmeAccountUrl;
  if (values.acmeAccountKey !== undefined) certbot.account_key = values.acmeAccountKey;
  if (values.acmeCaFile !== undefined) certbot.acme_ca_file = values.acmeCaFile;
  if (values.attestationCaFile !== undefined)
    section(obj, "core", "attestation").ca_file = values.attestationCaFile;
  parseGatewayConfig(obj, source);
  return obj;
}

/** The host's gateway.toml text. */
export function hostConfigToml(config: GatewayConfig, values: GeneratedValues, source: string) {
  return serializeConfig(hostConfigObject(config, values, source), "toml");
}

/** `host:port` for WireGuard peers; IPv6 hosts in brackets. */
export function wgEndpoint(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
