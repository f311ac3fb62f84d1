/**
 * Stand-in for @pulumi/cloudflare 6.x's load balancing resources (the `global` stack's front
 * door): `LoadBalancer`, `LoadBalancerPool` and `LoadBalancerMonitor`. Inputs are checked
 * against the provider's documented shapes (required properties as in its .d.ts; monitor
 * `type` one of its protocols, `expectedCodes` and `path` for HTTP(S) only; `steeringPolicy`
 * one of its values, `regionPools` keyed by Cloudflare's geographic regions; each origin with
 * an address). Nothing is applied anywhere: the lab has no load balancer.
 */
import { GEO_REGIONS } from "../../../components/front-door.js";
import type { Props } from "../values.js";

export const LB_TYPES = {
  "cloudflare:index/loadBalancer:LoadBalancer": ["zoneId", "name", "defaultPools", "fallbackPool"],
  "cloudflare:index/loadBalancerPool:LoadBalancerPool": ["accountId", "name", "origins"],
  "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor": ["accountId"],
} as const;

const MONITOR_TYPES = new Set(["http", "https", "tcp", "udp_icmp", "icmp_ping", "smtp"]);
const STEERING = new Set([
  "off",
  "geo",
  "random",
  "dynamic_latency",
  "proximity",
  "least_outstanding_requests",
  "least_connections",
  "",
]);
const GEO = new Set<string>(GEO_REGIONS);

/** The resource type in a URN (`...::parent$type::name`). */
export function typeOfUrn(urn: string): string {
  const [, , qualified = ""] = urn.split("::");
  return qualified.split("$").pop() ?? qualified;
}

export function isLoadBalancing(type: string): type is keyof typeof LB_TYPES {
  return type in LB_TYPES;
}

export function checkLoadBalancing(
  type: keyof typeof LB_TYPES,
  p: Props,
): { property: string; reason: string }[] {
  const failures: { property: string; reason: string }[] = [];
  const fail = (property: string, reason: string) => failures.push({ property, reason });
  for (const key of LB_TYPES[type]) {
    if (p[key] === undefined || p[key] === null) fail(key, `missing required property '${key}'`);
  }
  if (type === "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor") {
    const kind = String(p.type ?? "http");
    if (!MONITOR_TYPES.has(kind)) fail("type", `unsupported monitor type ${kind}`);
    const web = kind === "http" || kind === "https";
    for (const key of ["expectedCodes", "expectedBody", "path", "followRedirects", "probeZone"]) {
      if (!web && p[key] !== undefined) fail(key, `only valid for HTTP and HTTPS monitors`);
    }
  }
  if (type === "cloudflare:index/loadBalancerPool:LoadBalancerPool") {
    const origins = Array.isArray(p.origins) ? (p.origins as Props[]) : [];
    if (origins.length === 0) fail("origins", "a pool needs at least one origin");
    origins.forEach((o, i) => {
      if (typeof o?.address !== "string")
        fail(`origins[${i}].address`, "an origin needs an address");
    });
  }
  if (type === "cloudflare:index/loadBalancer:LoadBalancer") {
    if (p.steeringPolicy !== undefined && !STEERING.has(String(p.steeringPolicy))) {
      fail("steeringPolicy", `unsupported steering policy ${String(p.steeringPolicy)}`);
    }
    for (const key of Object.keys((p.regionPools ?? {}) as object)) {
      if (!GEO.has(key)) fail(`regionPools.${key}`, `${key} is not a Cloudflare region`);
    }
    if (typeof p.ttl === "number" && p.proxied === true)
      fail("ttl", "ttl is not used when proxied");
  }
  return failures;
}
