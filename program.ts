import * as pulumi from "@pulumi/pulumi";
import { type BundleInfo, readBundle } from "./components/bundle.js";
import { GatewayRegion } from "./components/gateway-region.js";
import { readGatewayConfig } from "./components/stack-config.js";
import { readStackSettings } from "./components/stack-settings.js";

export interface ProgramOptions {
  /** The bundle to ship; offline plans pass a stand-in so they do not change with every build. @default readBundle() */
  readonly bundle?: BundleInfo;
}

/**
 * The Pulumi program for one region stack. It validates `gateway:config` with the runtime's
 * schema first, so a bad stack fails before any resource is planned; then it builds the region.
 */
export function gatewayProgram(options: ProgramOptions = {}) {
  const config = readGatewayConfig();
  const settings = readStackSettings();
  const bundle = options.bundle ?? readBundle();
  const region = new GatewayRegion(pulumi.getStack(), {
    config,
    hosts: settings.hosts,
    sshUser: settings.sshUser,
    ...(settings.sshPrivateKey === undefined ? {} : { sshPrivateKey: settings.sshPrivateKey }),
    dns: settings.dns,
    ...(settings.dnsZone === undefined ? {} : { dnsZone: settings.dnsZone }),
    customDomains: settings.customDomains,
    ...(settings.acmeCaPem === undefined ? {} : { acmeCaPem: settings.acmeCaPem }),
    ...(settings.attestationCaPem === undefined
      ? {}
      : { attestationCaPem: settings.attestationCaPem }),
    ...(settings.caaIssuer === undefined ? {} : { caaIssuer: settings.caaIssuer }),
    nodeMajor: settings.nodeMajor,
    bundlePath: bundle.path,
    bundleSha256: bundle.sha256,
  });
  return {
    baseDomain: config.core.proxy.base_domain,
    rpcDomain: config.core.rpc_domain,
    acmeAccountUrl: region.acmeAccountUrl,
    hosts: region.hosts.map((h) => ({
      name: h.name,
      address: h.address,
      wireguardPublicKey: h.wgPublicKey,
      wireguardEndpoint: h.wgEndpoint,
    })),
  };
}
