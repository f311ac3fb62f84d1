import * as pulumi from "@pulumi/pulumi";
import { AcmeAccount } from "./acme-account.js";
import { readBundle } from "./bundle.js";
import { givenSecrets, type SecretArg, withSecrets } from "./config-secrets.js";
import { type CustomDomain, GatewayDns } from "./gateway-dns.js";
import { GatewayHost } from "./gateway-host.js";
import { hostConfig, hostConfigToml, needsAdminToken, wgEndpoint } from "../host/config.js";
import { AdminToken } from "./admin-token.js";
import { hostLayout } from "../host/layout.js";
import { operatorConfig } from "./stack-config.js";
import { WireGuardKey } from "./wireguard-key.js";
import { regionCluster, regionEtcdTls, shippedRegionConfigs } from "./region-cluster.js";

/**
 * The type token: the package's name first, as Pulumi's component packages need
 * (`pulumi package add` turns `<package>:index:<Component>` into each language's class).
 */
export const GATEWAY_REGION_TYPE = "cvm-tls-gateway:index:GatewayRegion";
/** The token before the package's: existing stacks keep their resources through this alias. */
export const GATEWAY_REGION_TYPE_BEFORE = "gateway:index:GatewayRegion";

/** Where the region's DNS records go (an object, so Pulumi's component schema has it as an enum). */
export const RegionDns = {
  /** Write them to Cloudflare. */
  Cloudflare: "cloudflare",
  /** Leave them to someone else (the lab applies them to its RFC 2136 server). */
  None: "none",
} as const;
export type RegionDns = (typeof RegionDns)[keyof typeof RegionDns];

/**
 * The gateway config as a stack writes it: an object with dstack's gateway.toml keys. Typed
 * loosely here so every Pulumi language can pass it; `GatewayRegion` validates it with the
 * runtime's schema, and a TypeScript program can check it earlier as `OperatorConfigInput`.
 */
// biome-ignore lint/suspicious/noExplicitAny: a map of any is the schema's "object of anything"
export type GatewayConfigObject = { [key: string]: any };

/** One gateway host of a region. */
export interface RegionHost {
  /** Short name, used in resource names (`<region>-<name>`). */
  readonly name: string;
  /** Public IPv4 address: SSH, DNS A records and the WireGuard endpoint. */
  readonly address: string;
  /** Public IPv6 address for AAAA records. */
  readonly ipv6?: string | undefined;
  readonly sshPort?: number | undefined;
  readonly sshHostKey?: string | undefined;
  /** Change to rotate this host's WireGuard key pair. */
  readonly wgKeyRotation?: string | undefined;
}

export interface GatewayRegionArgs {
  /**
   * The gateway config as a stack writes it (`gateway:config`: dstack's gateway.toml keys, less
   * the keys the program generates), validated here. Not an Input: it shapes the resources.
   */
  config: GatewayConfigObject;
  /** Names the config in error messages. @default "region <name> config" */
  configSource?: string | undefined;
  /** The region's hosts. Not an Input: one `GatewayHost` each. */
  hosts: RegionHost[];
  /** SSH user of every host: root, or a user with passwordless sudo (every script then runs through `sudo -n`). @default "root" */
  sshUser?: pulumi.Input<string> | undefined;
  /** SSH private key, a secret. @default none: the SSH agent is used */
  sshPrivateKey?: pulumi.Input<string> | undefined;
  // Not `| undefined` as the other optional args: the analyzer maps no union beyond the enum.
  /** Write the region's records to Cloudflare, or leave DNS to someone else (the lab's RFC 2136 server). @default "cloudflare" */
  dns?: RegionDns;
  /** Cloudflare zone name of the base domain. @default the zone `core.certbot.cf_zone_id` */
  dnsZone?: pulumi.Input<string> | undefined;
  /** Custom domains whose TXT records point at apps. @default [] */
  customDomains?: CustomDomain[] | undefined;
  /** `core.certbot.cf_api_token`, a secret, when the config leaves it out. @default none */
  cloudflareApiToken?: pulumi.Input<string> | undefined;
  /** `core.admin.auth_token`, a secret, when the config leaves it out. @default a token the region makes */
  adminAuthToken?: pulumi.Input<string> | undefined;
  /** `core.certbot.rfc2136.tsig_secret`, a secret, when the config leaves it out. @default none */
  rfc2136TsigSecret?: pulumi.Input<string> | undefined;
  /** PEM of a private ACME CA (pebble) trusted by the account registration and the runtime. @default none */
  acmeCaPem?: pulumi.Input<string> | undefined;
  /** PEM CA bundle CVM client certificates must chain to (attestation mode "ca": the KMS root, or a development CA). @default none */
  attestationCaPem?: pulumi.Input<string> | undefined;
  /** An external etcd's CA (`core.cluster.etcd.endpoints` set): written to the hosts as `ca_file`. @default none */
  etcdCaPem?: pulumi.Input<string> | undefined;
  /** The gateways' client certificate for an external etcd, with `etcdClientKeyPem` (a secret). @default none */
  etcdClientCertPem?: pulumi.Input<string> | undefined;
  /** The key of `etcdClientCertPem`, a secret. @default none */
  etcdClientKeyPem?: pulumi.Input<string> | undefined;
  /** CAA issuer domain. @default derived from `core.certbot.acme_url` */
  caaIssuer?: pulumi.Input<string> | undefined;
  /** Change to rotate the region's admin token (made when the stack names no admin credentials). @default "" */
  adminTokenRotation?: pulumi.Input<string> | undefined;
  /** Node.js major installed when a host's node is missing or older; at least `NODE_MAJOR`. @default 26 */
  nodeMajor?: pulumi.Input<number> | undefined;
  /**
   * An app id the rollout's health gate routes a request to on each updated host
   * (`<id>.<base_domain>` through the host's own TLS port, expecting an answer below 500).
   * @default none: the gate checks readiness, the certificate and the registrations only
   */
  canaryAppId?: string | undefined;
  /** The bundled runtime. @default this package's dist/gateway.mjs */
  bundlePath?: string | undefined;
  /** sha256 of the bundle; a new one restarts the gateways. @default computed from the bundle */
  bundleSha256?: pulumi.Input<string> | undefined;
}

export interface RegionHostOutputs {
  readonly name: string;
  readonly address: string;
  readonly wgPublicKey: string;
  readonly wgEndpoint: string;
  /** `core.wg.ip` of this host: the region's, plus the host's index in `gateway:hosts`. */
  readonly wgIp: string;
}

/**
 * A whole region: ACME account, a WireGuard key and a `GatewayHost` per host, its DNS, and with
 * `core.cluster` the etcd the hosts share (a member on each, with the region's own CA, unless
 * the stack names an external etcd).
 */
export class GatewayRegion extends pulumi.ComponentResource {
  readonly acmeAccountUrl: pulumi.Output<string> | undefined;
  /** The admin API token every host has (a secret), when the program made it. */
  readonly adminToken: pulumi.Output<string> | undefined;
  /** `core.proxy.base_domain`: apps are `<app-id>[-<port>][s|g].<baseDomain>`. */
  readonly baseDomain: string;
  /** `core.rpc_domain`: the name CVMs register at. */
  readonly rpcDomain: string;
  readonly hosts: pulumi.Output<RegionHostOutputs[]>;

  constructor(name: string, args: GatewayRegionArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super(
      GATEWAY_REGION_TYPE,
      name,
      {},
      pulumi.mergeOptions(opts, { aliases: [{ type: GATEWAY_REGION_TYPE_BEFORE }] }),
    );
    const source = args.configSource ?? `region ${name} config`;
    // Secrets given as Inputs are validated with the config, as present now and with their
    // values once known (`withSecrets`).
    const secrets = givenSecrets(args);
    const config = operatorConfig(withSecrets(args.config, secrets, {}, source), source);
    const bundle =
      args.bundleSha256 === undefined
        ? readBundle(args.bundlePath)
        : { path: args.bundlePath, sha256: args.bundleSha256 };
    const { certbot } = config.core;
    this.baseDomain = config.core.proxy.base_domain;
    this.rpcDomain = config.core.rpc_domain;
    // Hosts of one region share registrations through etcd (`core.cluster`), which the
    // program runs on them unless the stack names an external one; the checks fail the
    // preview before any resource is registered.
    const stack = pulumi.getStack();
    const cluster = regionCluster(
      config,
      args.hosts,
      {
        ca: args.etcdCaPem !== undefined,
        clientCert: args.etcdClientCertPem !== undefined,
        clientKey: args.etcdClientKeyPem !== undefined,
      },
      stack,
    );
    // Each host's config against the files shipped to it, before any resource is registered:
    // a file nothing ships fails the preview here, not the gateway on the host.
    const cas = {
      acmeCa: args.acmeCaPem !== undefined,
      attestationCa: args.attestationCaPem !== undefined,
    };
    const hostConfigs = shippedRegionConfigs(config, args.hosts, cluster, cas, stack);
    const secretValues = pulumi.all(
      Object.fromEntries(secrets.map((k) => [k, args[k]])) as Record<SecretArg, string>,
    );
    // Host i's config with the secrets' values, once they are known.
    const revealed = (values: Partial<Record<SecretArg, string>>, i: number) =>
      secrets.length === 0
        ? hostConfigs[i]
        : shippedRegionConfigs(
            operatorConfig(withSecrets(args.config, secrets, values, source), source),
            args.hosts,
            cluster,
            cas,
            stack,
          )[i];
    const child = { parent: this };

    let account: AcmeAccount | undefined;
    if (certbot.enabled) {
      if (certbot.contact_email === undefined) {
        throw new pulumi.RunError(
          `region ${name}: core.certbot.contact_email is required: the program registers the ACME account with it`,
        );
      }
      account = new AcmeAccount(
        `${name}-acme`,
        {
          directoryUrl: certbot.acme_url,
          email: certbot.contact_email,
          caPem: args.acmeCaPem,
        },
        child,
      );
    }

    const adminToken = needsAdminToken(config)
      ? new AdminToken(`${name}-admin-token`, { rotation: args.adminTokenRotation }, child).token
      : undefined;
    this.adminToken = adminToken;
    const etcdTls = regionEtcdTls(
      name,
      cluster,
      args.hosts,
      {
        caPem: args.etcdCaPem,
        clientCertPem: args.etcdClientCertPem,
        clientKeyPem: args.etcdClientKeyPem,
      },
      this,
    );
    const memberAddresses = cluster.kind === "members" ? cluster.members.map((m) => m.address) : [];
    // Several hosts roll out one at a time (host/rollout.ts): each host's drain waits for the
    // previous host's gate. A host alone keeps its steps as they were: nothing to wait for.
    let previousGate: pulumi.Resource | undefined;
    const rolling = args.hosts.length > 1;

    const hostOutputs = args.hosts.map((host, i) => {
      const shipped = hostConfigs[i];
      if (shipped === undefined) throw new Error(`no config for host ${host.name}`);
      const key = new WireGuardKey(
        `${name}-${host.name}-wg`,
        { rotation: host.wgKeyRotation ?? "" },
        child,
      );
      const endpoint = wgEndpoint(host.address, config.core.wg.listen_port);
      const toml = pulumi
        .all([
          secretValues,
          key.privateKey,
          key.publicKey,
          account?.accountUrl,
          account?.accountKey,
          adminToken,
        ])
        .apply(([values, wgPrivateKey, wgPublicKey, acmeAccountUrl, acmeAccountKey, token]) =>
          hostConfigToml(
            hostConfig(revealed(values, i) ?? shipped, {
              wgPrivateKey,
              wgPublicKey,
              wgEndpoint: endpoint,
              acmeAccount:
                acmeAccountUrl === undefined || acmeAccountKey === undefined
                  ? undefined
                  : { url: acmeAccountUrl, key: acmeAccountKey },
              adminToken: token,
              nodeName: config.core.cluster.enabled ? host.name : undefined,
            }),
          ),
        );
      const gatewayHost = new GatewayHost(
        `${name}-${host.name}`,
        {
          address: host.address,
          sshPort: host.sshPort ?? 22,
          configToml: pulumi.secret(toml),
          layout: {
            ...hostLayout(config, host.sshPort ?? 22),
            ...(cluster.kind === "members"
              ? { etcdPeers: memberAddresses.filter((a) => a !== host.address) }
              : {}),
          },
          bundleSha256: bundle.sha256,
          sshUser: args.sshUser,
          sshPrivateKey: args.sshPrivateKey,
          sshHostKey: host.sshHostKey,
          acmeCaPem: args.acmeCaPem,
          attestationCaPem: args.attestationCaPem,
          nodeMajor: args.nodeMajor,
          bundlePath: bundle.path,
          etcd: etcdTls.get(host.name),
          rollout: rolling
            ? {
                spec: {
                  node: host.name,
                  admin: config.core.admin.enabled,
                  canaryAppId: args.canaryAppId,
                  acmeCa: args.acmeCaPem !== undefined,
                },
                after: previousGate,
              }
            : undefined,
        },
        child,
      );
      previousGate = gatewayHost.gate;
      return {
        name: host.name,
        address: host.address,
        wgPublicKey: key.publicKey,
        wgEndpoint: endpoint,
        wgIp: shipped.core.wg.ip,
      };
    });

    if ((args.dns ?? "cloudflare") === "cloudflare") {
      const zone =
        args.dnsZone !== undefined
          ? { zoneName: args.dnsZone }
          : certbot.cf_zone_id !== undefined
            ? { zoneId: certbot.cf_zone_id }
            : undefined;
      if (zone === undefined) {
        throw new pulumi.RunError(
          `region ${name}: Cloudflare DNS needs gateway:dnsZone or core.certbot.cf_zone_id`,
        );
      }
      new GatewayDns(
        `${name}-dns`,
        {
          ...zone,
          baseDomain: config.core.proxy.base_domain,
          rpcDomain: config.core.rpc_domain,
          hosts: args.hosts.map((h) => ({ name: h.name, ipv4: h.address, ipv6: h.ipv6 })),
          ...(account === undefined || !certbot.auto_set_caa
            ? {}
            : { accountUrl: account.accountUrl, acmeDirectoryUrl: certbot.acme_url }),
          caaIssuer: args.caaIssuer,
          customDomains: args.customDomains ?? [],
          appAddressPrefix: config.core.proxy.app_address_ns_prefix,
        },
        child,
      );
    }

    this.hosts = pulumi
      .all(hostOutputs.map((h) => h.wgPublicKey))
      .apply((keys) => hostOutputs.map((h, i) => ({ ...h, wgPublicKey: keys[i] ?? "" })));
    this.acmeAccountUrl = account?.accountUrl;
    this.registerOutputs({
      acmeAccountUrl: this.acmeAccountUrl,
      adminToken: this.adminToken,
      hosts: this.hosts.apply((hs) =>
        hs.map((h) => ({ name: h.name, wgPublicKey: h.wgPublicKey })),
      ),
    });
  }
}
