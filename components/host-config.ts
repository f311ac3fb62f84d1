import * as pulumi from "@pulumi/pulumi";
import {
  checkHostFiles,
  ConfigError,
  type GatewayConfig,
  parseGatewayConfig,
  type ReadFileKey,
  serializeConfig,
  toConfigObject,
  withoutNoEffectKeys,
} from "../gateway-runtime/config/index.js";
import { type ShippedCas, shippedFiles } from "./host-files.js";
import { HOST_PATHS } from "./host-layout.js";

/** What the program generates for one host and writes into its config. */
export interface GeneratedValues {
  readonly wgPrivateKey: string;
  readonly wgPublicKey: string;
  /** `<host address>:<core.wg.listen_port>`. */
  readonly wgEndpoint: string;
  /** The region's ACME account, when `core.certbot.enabled`. */
  readonly acmeAccountUrl?: string;
  readonly acmeAccountKey?: string;
}

/** What a stack does so that the program ships the file a key names. */
const SHIP_HINTS: Record<ReadFileKey, string> = {
  "core.attestation.ca_file":
    'set gateway:attestationCaPem (the program writes it to the host and points ca_file at it), or use core.attestation.mode "tdx" with core.attestation.pccs_url',
  "core.certbot.acme_ca_file":
    "set gateway:acmeCaPem instead (the program writes it to the host and points acme_ca_file at it)",
  "core.proxy.cert_chain": "enable core.certbot: the program ships no certificate",
  "core.proxy.cert_key": "enable core.certbot: the program ships no certificate",
  "core.cluster.etcd.ca_file": "the program does not provision etcd TLS yet (core.cluster)",
  "core.cluster.etcd.cert_file": "the program does not provision etcd TLS yet (core.cluster)",
  "core.cluster.etcd.key_file": "the program does not provision etcd TLS yet (core.cluster)",
};

/**
 * The part of a host's config known before any resource exists: the stack's config pointed at
 * the CA files the program ships, then checked by the runtime's own `checkHostFiles` against
 * every file `GatewayHost` ships. Called once per host where the region builds it, outside any
 * apply, so a config naming a file nothing ships fails `pulumi preview` (a RunError naming the
 * stack, host, key and path) instead of the gateway on the host, at `pulumi up`.
 */
export function shippedHostConfig(
  config: GatewayConfig,
  cas: ShippedCas,
  where: { stack: string; host: string },
): GatewayConfig {
  const { core } = config;
  const hostConfig: GatewayConfig = {
    ...config,
    core: {
      ...core,
      certbot: cas.acmeCa ? { ...core.certbot, acme_ca_file: HOST_PATHS.acmeCa } : core.certbot,
      attestation: cas.attestationCa
        ? { ...core.attestation, ca_file: HOST_PATHS.attestationCa }
        : core.attestation,
    },
  };
  const problems = checkHostFiles(hostConfig, shippedFiles(cas));
  if (problems.length > 0) {
    const hinted = problems.map((p) => ({
      path: p.path,
      message: `${p.message}: ${SHIP_HINTS[p.path as ReadFileKey]}`,
    }));
    const source = `stack ${where.stack}, host ${where.host}`;
    throw new pulumi.RunError(new ConfigError(source, hinted, "E_CONFIG_FILE_MISSING").message);
  }
  return hostConfig;
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
 * The config one host runs: `shippedHostConfig` with the generated values filled in,
 * validated again with the runtime's schema (so a key pair that does not match, or a bad
 * endpoint, fails the deployment instead of the gateway). Secrets are revealed: for hosts only.
 * Keys the runtime does not act on are left out: written with their defaults they would make
 * every host warn at each start about lines nobody put there.
 */
export function hostConfigObject(config: GatewayConfig, values: GeneratedValues, source: string) {
  const obj = withoutNoEffectKeys(toConfigObject(config));
  const wg = section(obj, "core", "wg");
  wg.private_key = values.wgPrivateKey;
  wg.public_key = values.wgPublicKey;
  wg.endpoint = values.wgEndpoint;
  const certbot = section(obj, "core", "certbot");
  if (values.acmeAccountUrl !== undefined) certbot.account_url = values.acmeAccountUrl;
  if (values.acmeAccountKey !== undefined) certbot.account_key = values.acmeAccountKey;
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
