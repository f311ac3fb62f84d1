import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";

/**
 * Cloudflare's geographic regions (load balancer `regionPools` keys): western and eastern
 * North America, northern and southern South America, western and eastern Europe, Oceania,
 * Middle East, northern and southern Africa, southern, southeast and northeast Asia.
 */
export const GEO_REGIONS = [
  "WNAM",
  "ENAM",
  "NSAM",
  "SSAM",
  "WEU",
  "EEU",
  "OC",
  "ME",
  "NAF",
  "SAF",
  "SAS",
  "SEAS",
  "NEAS",
] as const;
export type GeoRegion = (typeof GEO_REGIONS)[number];

/** One gateway region behind the front door: its hosts, and where its clients are. */
export interface FrontDoorRegion {
  /** The region's stack name: resource names (`<name>-<region>-pool`). */
  readonly name: string;
  /** `core.proxy.base_domain` of the region: the monitor asks `health.<baseDomain>`. */
  readonly baseDomain: string;
  readonly hosts: readonly { readonly name: string; readonly address: string }[];
  /** Cloudflare regions steered to this region's pool first. */
  readonly geo: readonly GeoRegion[];
}

export interface FrontDoorArgs {
  /** The name clients use (a custom domain the regions route by its TXT record). */
  name: string;
  zoneId: pulumi.Input<string>;
  /** The Cloudflare account that owns pools and monitors. */
  accountId: pulumi.Input<string>;
  regions: readonly FrontDoorRegion[];
  /** The region whose pool answers when every pool is down. @default the first */
  fallback?: string | undefined;
}

/**
 * The regions behind one name: a Cloudflare load balancer with geographic steering, a pool per
 * region whose origins are the region's hosts, and a monitor per region on
 * `https://health.<base_domain>/health`, expecting 200. A host draining for its update
 * (host/rollout.ts) answers 503 there, so the pool leaves it out until its gate lets it back
 * in; a region with no healthy host leaves the steering, and clients go to the next pool.
 * DNS only (not proxied): the gateways terminate or pass through TLS themselves.
 */
export class FrontDoor extends pulumi.ComponentResource {
  readonly loadBalancer: cloudflare.LoadBalancer;

  constructor(name: string, args: FrontDoorArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("gateway:index:FrontDoor", name, {}, opts);
    if (args.regions.length === 0) throw new pulumi.RunError(`${name}: list at least one region`);
    const child = { parent: this };
    const pools = new Map<string, cloudflare.LoadBalancerPool>();
    for (const region of args.regions) {
      const health = `health.${region.baseDomain}`;
      const monitor = new cloudflare.LoadBalancerMonitor(
        `${name}-${region.name}-monitor`,
        {
          accountId: args.accountId,
          description: `gateway region ${region.name}: ${health}/health`,
          type: "https",
          method: "GET",
          path: "/health",
          // The host name selects the gateway's own health name (SNI and Host).
          header: { Host: [health] },
          expectedCodes: "200",
          allowInsecure: false,
          followRedirects: false,
          interval: 60,
          timeout: 5,
          retries: 2,
          consecutiveDown: 2,
          consecutiveUp: 2,
        },
        child,
      );
      pools.set(
        region.name,
        new cloudflare.LoadBalancerPool(
          `${name}-${region.name}-pool`,
          {
            accountId: args.accountId,
            name: `${name}-${region.name}`,
            description: `gateway region ${region.name} (${region.baseDomain})`,
            enabled: true,
            minimumOrigins: 1,
            monitor: monitor.id,
            origins: region.hosts.map((h) => ({
              name: h.name,
              address: h.address,
              enabled: true,
              weight: 1,
            })),
          },
          child,
        ),
      );
    }
    const poolId = (region: string) => {
      const pool = pools.get(region);
      if (pool === undefined) throw new pulumi.RunError(`${name}: no region ${region}`);
      return pool.id;
    };
    const regionPools: Record<string, pulumi.Output<string>[]> = {};
    for (const region of args.regions) {
      for (const geo of region.geo) {
        if (regionPools[geo] !== undefined) {
          throw new pulumi.RunError(`${name}: ${geo} is steered to two regions`);
        }
        regionPools[geo] = [poolId(region.name)];
      }
    }
    const fallback = args.fallback ?? (args.regions[0] as FrontDoorRegion).name;
    this.loadBalancer = new cloudflare.LoadBalancer(
      name,
      {
        zoneId: args.zoneId,
        name: args.name,
        description: `gateway regions ${args.regions.map((r) => r.name).join(", ")}`,
        enabled: true,
        proxied: false,
        ttl: 30,
        steeringPolicy: "geo",
        regionPools,
        defaultPools: args.regions.map((r) => poolId(r.name)),
        fallbackPool: poolId(fallback),
      },
      { ...child, parent: this },
    );
    this.registerOutputs({ loadBalancer: this.loadBalancer.id });
  }
}
