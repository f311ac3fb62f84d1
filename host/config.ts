import * as pulumi from "@pulumi/pulumi";
import {
  checkHostFiles,
  ConfigError,
  type GatewayConfig,
  type OperatorConfig,
  type ReadFileKey,
  Secret,
  serializeConfig,
  toConfigObject,
  withoutNoEffectKeys,
} from "../gateway-runtime/config/index.js";
import { type ShippedCas, shippedFiles } from "./files.js";
import { HOST_PATHS } from "./layout.js";

/** What the program generates for one host and writes into its config. */
export interface GeneratedValues {
  readonly wgPrivateKey: string;
  readonly wgPublicKey: string;
  /** `<host address>:<core.wg.listen_port>`. */
  readonly wgEndpoint: string;
  /** The region's ACME account, when `core.certbot.enabled`. */
  readonly acmeAccount?: { readonly url: string; readonly key: string } | undefined;
  /** The region's admin token, when the stack configures no admin credentials of its own. */
  readonly adminToken?: string | undefined;
  /** `core.cluster.node_name`: the host's name in `gateway:hosts`, when `core.cluster.enabled`. */
  readonly nodeName?: string | undefined;
}

/** What a stack does so that the program ships the file a key names. */
const SHIP_HINTS: Record<ReadFileKey, string> = {
  "core.attestation.ca_file":
    'set gateway:attestationCaPem (the program writes it to the host and points ca_file at it), or use core.attestation.mode "tdx" with core.attestation.pccs_url',
  "core.certbot.acme_ca_file":
    "set gateway:acmeCaPem instead (the program writes it to the host and points acme_ca_file at it)",
  "core.proxy.cert_chain": "enable core.certbot: the program ships no certificate",
  "core.proxy.cert_key": "enable core.certbot: the program ships no certificate",
  "core.admin.auth_token_file":
    "the program ships no token file: leave the admin credentials unset (the program then generates a token per region, the stack output adminToken) or set core.admin.auth_token as a secret",
  "core.admin.htpasswd_file":
    "the program ships no htpasswd file: leave the admin credentials unset (the program then generates a token per region) or set core.admin.auth_token as a secret",
  "core.cluster.etcd.ca_file":
    "leave it unset: the program ships the CA and points ca_file at it (its own, or gateway:etcdCaPem with core.cluster.etcd.endpoints)",
  "core.cluster.etcd.cert_file":
    "leave it unset: the program ships the client certificate and points cert_file at it (its own, or gateway:etcdClientCertPem with core.cluster.etcd.endpoints)",
  "core.cluster.etcd.key_file":
    "leave it unset: the program ships the client key and points key_file at it (its own, or gateway:etcdClientKeyPem with core.cluster.etcd.endpoints)",
};

/**
 * The part of a host's config known before any resource exists: the stack's config pointed at
 * the CA files the program ships, then checked by the runtime's own `checkHostFiles` against
 * every file `GatewayHost` ships. Called once per host where the region builds it, outside any
 * apply, so a config naming a file nothing ships fails `pulumi preview` (a RunError naming the
 * stack, host, key and path) instead of the gateway on the host, at `pulumi up`.
 */
export function shippedHostConfig(
  config: OperatorConfig,
  cas: ShippedCas,
  where: { stack: string; host: string },
): OperatorConfig {
  const { core } = config;
  const hostConfig: OperatorConfig = {
    ...config,
    core: {
      ...core,
      certbot: cas.acmeCa ? { ...core.certbot, acme_ca_file: HOST_PATHS.acmeCa } : core.certbot,
      attestation: cas.attestationCa
        ? { ...core.attestation, ca_file: HOST_PATHS.attestationCa }
        : core.attestation,
      cluster:
        cas.etcdCa || cas.etcdClient
          ? { ...core.cluster, etcd: etcdFiles(config, cas) }
          : core.cluster,
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

/** `core.cluster.etcd` pointed at the etcd TLS files the program ships. */
function etcdFiles(config: OperatorConfig, cas: ShippedCas) {
  const { etcd } = config.core.cluster;
  return {
    ...etcd,
    ...(cas.etcdCa ? { ca_file: HOST_PATHS.etcdCa } : {}),
    ...(cas.etcdClient
      ? { cert_file: HOST_PATHS.etcdClientCert, key_file: HOST_PATHS.etcdClientKey }
      : {}),
  };
}

/**
 * The config one host runs, built once as a typed value: the stack's config (already pointed at
 * the shipped files by `shippedHostConfig`) with the values the program generated for this host.
 * Nothing is parsed again here; the runtime parses the written file once, at start.
 */
export function hostConfig(config: OperatorConfig, values: GeneratedValues): GatewayConfig {
  const { wg, certbot, admin, cluster } = config.core;
  const { acmeAccount, adminToken, nodeName } = values;
  return {
    ...config,
    core: {
      ...config.core,
      wg: {
        ...wg,
        private_key: Secret.of(values.wgPrivateKey),
        public_key: values.wgPublicKey,
        endpoint: values.wgEndpoint,
      },
      admin: adminToken === undefined ? admin : { ...admin, auth_token: Secret.of(adminToken) },
      certbot: acmeAccount
        ? { ...certbot, account_url: acmeAccount.url, account_key: Secret.of(acmeAccount.key) }
        : certbot,
      cluster: nodeName === undefined ? cluster : { ...cluster, node_name: nodeName },
    },
  };
}

/**
 * The host's gateway.toml, serialized once. Secrets are revealed: for hosts only. Keys the
 * runtime does not act on are left out: written with their defaults they would make every host
 * warn at each start about lines nobody put there.
 */
export function hostConfigToml(config: GatewayConfig): string {
  return serializeConfig(withoutNoEffectKeys(toConfigObject(config)), "toml");
}

/**
 * Whether the program makes the region's admin token: the admin API is on and the stack names
 * no credentials (nor opts out of them). The gateway refuses to start without any.
 */
export function needsAdminToken(config: OperatorConfig): boolean {
  const { admin } = config.core;
  const own = admin.auth_token ?? admin.auth_token_file ?? admin.htpasswd_file;
  return admin.enabled && own === undefined && !admin.insecure_no_auth;
}

/** `host:port` for WireGuard peers; IPv6 hosts in brackets. */
export function wgEndpoint(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
