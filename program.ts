import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { GatewayRegion } from "./components/gateway-region.js";
import { readGatewayConfig } from "./components/stack-config.js";
import { readStackSettings } from "./components/stack-settings.js";

/** The bundled runtime every host runs, and its sha256 (a new bundle restarts the gateways). */
export interface BundleInfo {
  readonly path: string;
  readonly sha256: string;
}

export const DEFAULT_BUNDLE = "dist/gateway.mjs";

/** Reads the bundle `npm run build` wrote; a missing bundle stops the program before anything is planned. */
export function readBundle(path = DEFAULT_BUNDLE): BundleInfo {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new pulumi.RunError(`${path} is missing: run "npm run build" first`);
  }
  return { path, sha256: createHash("sha256").update(bytes).digest("hex") };
}

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
