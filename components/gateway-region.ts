import * as pulumi from "@pulumi/pulumi";
import type { OperatorConfigInput } from "../gateway-runtime/config/index.js";
import { AcmeAccount } from "./acme-account.js";
import { type CustomDomain, GatewayDns } from "./gateway-dns.js";
import { GatewayHost } from "./gateway-host.js";
import {
  hostConfig,
  hostConfigToml,
  needsAdminToken,
  shippedHostConfig,
  wgEndpoint,
} from "../host/config.js";
import { AdminToken } from "./admin-token.js";
import { hostLayout } from "../host/layout.js";
import { operatorConfig } from "./stack-config.js";
import { WireGuardKey } from "./wireguard-key.js";

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
  config: OperatorConfigInput;
  /** Names the config in error messages. @default "region <name> config" */
  configSource?: string | undefined;
  /** The region's hosts. Not an Input: one `GatewayHost` each. */
  hosts: readonly RegionHost[];
  /** SSH user of every host. @default "root" */
  sshUser?: pulumi.Input<string> | undefined;
  /** SSH private key, a secret. @default none: the SSH agent is used */
  sshPrivateKey?: pulumi.Input<string> | undefined;
  /** Write the region's records to Cloudflare, or leave DNS to someone else (the lab's RFC 2136 server). @default "cloudflare" */
  dns?: "cloudflare" | "none" | undefined;
  /** Cloudflare zone name of the base domain. @default the zone `core.certbot.cf_zone_id` */
  dnsZone?: pulumi.Input<string> | undefined;
  /** Custom domains whose TXT records point at apps. @default [] */
  customDomains?: readonly CustomDomain[] | undefined;
  /** PEM of a private ACME CA (pebble) trusted by the account registration and the runtime. @default none */
  acmeCaPem?: pulumi.Input<string> | undefined;
  /** PEM CA bundle CVM client certificates must chain to (attestation mode "ca": the KMS root, or a development CA). @default none */
  attestationCaPem?: pulumi.Input<string> | undefined;
  /** CAA issuer domain. @default derived from `core.certbot.acme_url` */
  caaIssuer?: pulumi.Input<string> | undefined;
  /** Change to rotate the region's admin token (made when the stack names no admin credentials). @default "" */
  adminTokenRotation?: pulumi.Input<string> | undefined;
  /** Node.js major installed when a host's node is missing or older; at least `NODE_MAJOR`. @default 26 */
  nodeMajor?: pulumi.Input<number> | undefined;
  /** The bundled runtime. @default this package's dist/gateway.mjs */
  bundlePath?: pulumi.Input<string> | undefined;
  /** sha256 of the bundle. */
  bundleSha256: pulumi.Input<string>;
}

export interface RegionHostOutputs {
  readonly name: string;
  readonly address: string;
  readonly wgPublicKey: pulumi.Output<string>;
  readonly wgEndpoint: string;
}

/** A whole region: ACME account, a WireGuard key and a `GatewayHost` per host, and its DNS. */
export class GatewayRegion extends pulumi.ComponentResource {
  readonly acmeAccountUrl: pulumi.Output<string> | undefined;
  /** The admin API token every host has (a secret), when the program made it. */
  readonly adminToken: pulumi.Output<string> | undefined;
  /** `core.proxy.base_domain`: apps are `<app-id>[-<port>][s|g].<baseDomain>`. */
  readonly baseDomain: string;
  /** `core.rpc_domain`: the name CVMs register at. */
  readonly rpcDomain: string;
  readonly hosts: readonly RegionHostOutputs[];

  constructor(name: string, args: GatewayRegionArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("gateway:index:GatewayRegion", name, {}, opts);
    const config = operatorConfig(args.config, args.configSource ?? `region ${name} config`);
    const { certbot } = config.core;
    this.baseDomain = config.core.proxy.base_domain;
    this.rpcDomain = config.core.rpc_domain;
    // Hosts of one region would each keep their own registrations and WireGuard peers, so a
    // CVM registered on one would be unreachable through the others. Nothing shares them yet
    // (core.sync has no effect), whatever the config says.
    if (args.hosts.length > 1) {
      throw new pulumi.RunError(
        `stack ${pulumi.getStack()}: ${args.hosts.length} hosts in gateway:hosts, but a region runs one host: multi-host sharing of registrations is not built yet (core.sync has no effect); list one host`,
      );
    }
    // Each host's config against the files shipped to it, before any resource is registered:
    // a file nothing ships fails the preview here, not the gateway on the host.
    const cas = {
      acmeCa: args.acmeCaPem !== undefined,
      attestationCa: args.attestationCaPem !== undefined,
    };
    const hostConfigs = args.hosts.map((host) =>
      shippedHostConfig(config, cas, { stack: pulumi.getStack(), host: host.name }),
    );
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

    this.hosts = args.hosts.map((host, i) => {
      const shipped = hostConfigs[i];
      if (shipped === undefined) throw new Error(`no config for host ${host.name}`);
      const key = new WireGuardKey(
        `${name}-${host.name}-wg`,
        { rotation: host.wgKeyRotation ?? "" },
        child,
      );
      const endpoint = wgEndpoint(host.address, config.core.wg.listen_port);
      const toml = pulumi
        .all([key.privateKey, key.publicKey, account?.accountUrl, account?.accountKey, adminToken])
        .apply(([wgPrivateKey, wgPublicKey, acmeAccountUrl, acmeAccountKey, token]) =>
          hostConfigToml(
            hostConfig(shipped, {
              wgPrivateKey,
              wgPublicKey,
              wgEndpoint: endpoint,
              acmeAccount:
                acmeAccountUrl === undefined || acmeAccountKey === undefined
                  ? undefined
                  : { url: acmeAccountUrl, key: acmeAccountKey },
              adminToken: token,
            }),
          ),
        );
      new GatewayHost(
        `${name}-${host.name}`,
        {
          address: host.address,
          sshPort: host.sshPort ?? 22,
          configToml: pulumi.secret(toml),
          layout: hostLayout(config, host.sshPort ?? 22),
          bundleSha256: args.bundleSha256,
          sshUser: args.sshUser,
          sshPrivateKey: args.sshPrivateKey,
          sshHostKey: host.sshHostKey,
          acmeCaPem: args.acmeCaPem,
          attestationCaPem: args.attestationCaPem,
          nodeMajor: args.nodeMajor,
          bundlePath: args.bundlePath,
        },
        child,
      );
      return {
        name: host.name,
        address: host.address,
        wgPublicKey: key.publicKey,
        wgEndpoint: endpoint,
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

    this.acmeAccountUrl = account?.accountUrl;
    this.registerOutputs({
      acmeAccountUrl: this.acmeAccountUrl,
      adminToken: this.adminToken,
      hosts: this.hosts.map((h) => ({ name: h.name, wgPublicKey: h.wgPublicKey })),
    });
  }
}
