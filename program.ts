import * as pulumi from "@pulumi/pulumi";
import { resolve } from "node:path";
import { type BundleInfo, packageRoot, readBundle } from "./components/bundle.js";
import { FrontDoor } from "./components/front-door.js";
import { frontDoorRegions, readFrontDoorSettings } from "./components/front-door-settings.js";
import { GatewayRegion } from "./components/gateway-region.js";
import { readStackGatewayConfig, STACK_CONFIG_KEY } from "./components/stack-config.js";
import { readStackSettings } from "./components/stack-settings.js";

export interface ProgramOptions {
  /** The bundle to ship; offline plans pass a stand-in so they do not change with every build. @default readBundle() */
  readonly bundle?: BundleInfo;
}

/** A region host as the stack's `hosts` output shows it. */
export interface RegionHostSummary {
  readonly name: string;
  readonly address: string;
  readonly wireguardPublicKey: string;
  readonly wireguardEndpoint: string;
  readonly wireguardIp: string;
}

/**
 * The Pulumi program for one region stack: the region's hosts and DNS from the stack's settings,
 * and `gateway:config`, which `GatewayRegion` validates before it plans any resource.
 */
export function gatewayProgram(options: ProgramOptions = {}) {
  // The global stack (gateway:frontDoor) puts the regions behind one name instead.
  const frontDoor = readFrontDoorSettings();
  if (frontDoor !== undefined) {
    const door = new FrontDoor(pulumi.getStack(), {
      name: frontDoor.name,
      zoneId: frontDoor.zoneId,
      accountId: frontDoor.accountId,
      regions: frontDoorRegions(frontDoor),
      fallback: frontDoor.fallback,
    });
    return {
      baseDomain: undefined,
      rpcDomain: undefined,
      acmeAccountUrl: undefined,
      adminToken: undefined,
      hosts: pulumi.output<RegionHostSummary[]>([]),
      frontDoor: { name: frontDoor.name, loadBalancerId: door.loadBalancer.id },
    };
  }
  const config = readStackGatewayConfig();
  const settings = readStackSettings();
  // Relative to the project, not to bin/ where Pulumi runs the compiled program.
  const bundle =
    options.bundle ??
    (settings.bundle === undefined
      ? readBundle()
      : readBundle(resolve(packageRoot(), settings.bundle), "gateway:bundle"));
  const stack = pulumi.getStack();
  const region = new GatewayRegion(stack, {
    config,
    configSource: `stack ${stack} ${STACK_CONFIG_KEY}`,
    hosts: settings.hosts,
    sshUser: settings.sshUser,
    sshPrivateKey: settings.sshPrivateKey,
    dns: settings.dns,
    dnsZone: settings.dnsZone,
    customDomains: settings.customDomains,
    acmeCaPem: settings.acmeCaPem,
    attestationCaPem: settings.attestationCaPem,
    etcdCaPem: settings.etcdCaPem,
    etcdClientCertPem: settings.etcdClientCertPem,
    etcdClientKeyPem: settings.etcdClientKeyPem,
    caaIssuer: settings.caaIssuer,
    nodeMajor: settings.nodeMajor,
    adminTokenRotation: settings.adminTokenRotation,
    canaryAppId: settings.canaryAppId,
    bundlePath: bundle.path,
    bundleSha256: bundle.sha256,
  });
  return {
    baseDomain: region.baseDomain,
    rpcDomain: region.rpcDomain,
    acmeAccountUrl: region.acmeAccountUrl,
    /** Secret; on a host `node /opt/gateway/gateway.mjs admin <call>` reads it from the config. */
    adminToken: region.adminToken,
    hosts: region.hosts.apply((hosts) =>
      hosts.map(
        (h): RegionHostSummary => ({
          name: h.name,
          address: h.address,
          wireguardPublicKey: h.wgPublicKey,
          wireguardEndpoint: h.wgEndpoint,
          wireguardIp: h.wgIp,
        }),
      ),
    ),
    frontDoor: undefined,
  };
}
