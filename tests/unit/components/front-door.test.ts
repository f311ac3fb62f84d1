/**
 * The front door (#19 point 4) under Pulumi mocks: exact inputs of the monitors, pools and load
 * balancer for two regions, the regions read from committed stack files, and its refusals.
 */
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { FrontDoor } from "../../../components/front-door.js";
import { frontDoorRegions } from "../../../components/front-door-settings.js";
import { planMocks } from "../../helpers/pulumi-mocks.js";

type Registered = { type: string; name: string; inputs: Record<string, unknown> };

async function register(make: () => FrontDoor): Promise<Registered[]> {
  const registered: Registered[] = [];
  const base = planMocks("global");
  await pulumi.runtime.setMocks(
    {
      ...base,
      newResource: async (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        return { id: `${args.name}-id`, state: args.inputs };
      },
    },
    "cvm-tls-gateway",
    "global",
    false,
  );
  const door = make();
  await new Promise<void>((resolve) => door.loadBalancer.urn.apply(() => resolve()));
  await new Promise((resolve) => setTimeout(resolve, 50));
  await pulumi.runtime.disconnect();
  return registered.sort((a, b) => a.name.localeCompare(b.name));
}

const REGIONS = [
  {
    name: "us",
    baseDomain: "us.gw.example.com",
    hosts: [{ name: "gw1", address: "192.0.2.10" }],
    geo: ["WNAM", "ENAM"] as const,
  },
  {
    name: "eu",
    baseDomain: "eu.gw.example.com",
    hosts: [
      { name: "gw1", address: "198.51.100.20" },
      { name: "gw2", address: "198.51.100.21" },
    ],
    geo: ["WEU"] as const,
  },
];

describe("FrontDoor", () => {
  it("a monitor and a pool per region, geo steering to them, exact inputs", async () => {
    const got = await register(
      () =>
        new FrontDoor("global", {
          name: "shop.example.org",
          zoneId: "zone-1",
          accountId: "acct-1",
          regions: REGIONS,
          fallback: "eu",
        }),
    );
    const monitor = (region: string) => ({
      accountId: "acct-1",
      description: `gateway region ${region}: health.${region}.gw.example.com/health`,
      type: "https",
      method: "GET",
      path: "/health",
      header: { Host: [`health.${region}.gw.example.com`] },
      expectedCodes: "200",
      allowInsecure: false,
      followRedirects: false,
      interval: 60,
      timeout: 5,
      retries: 2,
      consecutiveDown: 2,
      consecutiveUp: 2,
    });
    const origin = (name: string, address: string) => ({ name, address, enabled: true, weight: 1 });
    expect(got).toEqual([
      {
        type: "gateway:index:FrontDoor",
        name: "global",
        inputs: {},
      },
      {
        type: "cloudflare:index/loadBalancer:LoadBalancer",
        name: "global",
        inputs: {
          zoneId: "zone-1",
          name: "shop.example.org",
          description: "gateway regions us, eu",
          enabled: true,
          proxied: false,
          ttl: 30,
          steeringPolicy: "geo",
          regionPools: {
            WNAM: ["global-us-pool-id"],
            ENAM: ["global-us-pool-id"],
            WEU: ["global-eu-pool-id"],
          },
          defaultPools: ["global-us-pool-id", "global-eu-pool-id"],
          fallbackPool: "global-eu-pool-id",
        },
      },
      {
        type: "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor",
        name: "global-eu-monitor",
        inputs: monitor("eu"),
      },
      {
        type: "cloudflare:index/loadBalancerPool:LoadBalancerPool",
        name: "global-eu-pool",
        inputs: {
          accountId: "acct-1",
          name: "global-eu",
          description: "gateway region eu (eu.gw.example.com)",
          enabled: true,
          minimumOrigins: 1,
          monitor: "global-eu-monitor-id",
          origins: [origin("gw1", "198.51.100.20"), origin("gw2", "198.51.100.21")],
        },
      },
      {
        type: "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor",
        name: "global-us-monitor",
        inputs: monitor("us"),
      },
      {
        type: "cloudflare:index/loadBalancerPool:LoadBalancerPool",
        name: "global-us-pool",
        inputs: {
          accountId: "acct-1",
          name: "global-us",
          description: "gateway region us (us.gw.example.com)",
          enabled: true,
          minimumOrigins: 1,
          monitor: "global-us-monitor-id",
          origins: [origin("gw1", "192.0.2.10")],
        },
      },
    ]);
  });

  it("refuses a geographic region steered to two regions, and an unknown fallback", () => {
    const twice = [REGIONS[0], { ...REGIONS[1], geo: ["WNAM"] as const }] as typeof REGIONS;
    const args = { name: "a.example.org", zoneId: "z", accountId: "a" };
    expect(() => new FrontDoor("g1", { ...args, regions: twice })).toThrow(
      "g1: WNAM is steered to two regions",
    );
    expect(() => new FrontDoor("g2", { ...args, regions: REGIONS, fallback: "asia" })).toThrow(
      "g2: no region asia",
    );
  });
});

describe("the global stack's regions", () => {
  it("come from the committed region stack files: base domain and hosts", () => {
    const regions = frontDoorRegions({
      name: "shop.example.org",
      zoneId: "z",
      accountId: "a",
      regions: [
        { stack: "eu", geo: ["WEU"] },
        { stack: "asia", geo: ["SEAS"] },
      ],
    });
    expect(regions).toEqual([
      {
        name: "eu",
        baseDomain: "eu.gw.example.com",
        hosts: [
          { name: "gw1", address: "198.51.100.20" },
          { name: "gw2", address: "198.51.100.21" },
          { name: "gw3", address: "198.51.100.22" },
        ],
        geo: ["WEU"],
      },
      {
        name: "asia",
        baseDomain: "asia.gw.example.com",
        hosts: [{ name: "gw1", address: "203.0.113.30" }],
        geo: ["SEAS"],
      },
    ]);
  });
});
