import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { LabError } from "./exec.js";

/** Everything the lab makes on disk lives under `.lab/` of the checkout; `lab down` removes it. */
export const LAB_DIR = resolve(import.meta.dirname, "..", ".lab");

/** Fixed names and addresses: the lab stack (stacks/Pulumi.lab.yaml) refers to them. */
export const LAB = {
  bridge: "gwlab0",
  hostAddress: "10.99.0.1",
  prefix: 24,
  /** The region's gateway hosts; a lab of one host uses the first. */
  gateways: [
    { name: "gw1", ns: "gwlab-gw", address: "10.99.0.2", veth: "gwlab-gw0" },
    { name: "gw2", ns: "gwlab-gw2", address: "10.99.0.3", veth: "gwlab-gw20" },
    { name: "gw3", ns: "gwlab-gw3", address: "10.99.0.4", veth: "gwlab-gw30" },
  ],
  cvms: [
    { ns: "gwlab-cvm1", address: "10.99.0.11", veth: "gwlab-cvm10" },
    { ns: "gwlab-cvm2", address: "10.99.0.12", veth: "gwlab-cvm20" },
  ],
  /**
   * dstack's seed layout: the apps under `base_domain`, the RPC name beside it in the zone above
   * both (`gateway.example.com` beside `app.example.com`), so the wildcard does not cover it.
   */
  zone: "lab.test",
  baseDomain: "gw.lab.test",
  rpcDomain: "gateway.lab.test",
  customDomain: "shop.customer.lab.test",
  dnsPort: 53,
  acmePort: 14000,
  acmeManagementPort: 15000,
} as const;

export type LabGatewaySpec = (typeof LAB.gateways)[number];

/** The first gateway host: the one a lab of one host has, and the one CVMs register through. */
export const FIRST_GATEWAY: LabGatewaySpec = LAB.gateways[0];

/** Region sizes the lab brings up: one host (the default, fast), or three with etcd. */
export const REGION_SIZES = [1, 3] as const;
export type RegionSize = (typeof REGION_SIZES)[number];

const regionFile = () => labPath("region.json");

/**
 * The lab's region size: `--hosts N` of this run, else what the running lab has (so a later
 * `npm run lab` keeps it), else one host.
 */
export function regionSize(requested: string | undefined): RegionSize {
  if (requested !== undefined) {
    const n = Number(requested);
    const size = REGION_SIZES.find((s) => s === n);
    if (size === undefined)
      throw new LabError(
        `--hosts ${requested}: the lab runs a region of ${REGION_SIZES.join(" or ")} hosts`,
      );
    writeJson(regionFile(), { hosts: size });
    return size;
  }
  return readJson<{ hosts: RegionSize }>(regionFile())?.hosts ?? 1;
}

/** The gateway hosts of a region of `size`. */
export const regionGateways = (size: RegionSize): LabGatewaySpec[] => LAB.gateways.slice(0, size);

export function labPath(...parts: string[]): string {
  mkdirSync(LAB_DIR, { recursive: true, mode: 0o700 });
  return join(LAB_DIR, ...parts);
}

export function labDir(...parts: string[]): string {
  const dir = labPath(...parts);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function readJson<T>(file: string): T | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as T) : undefined;
}

export function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
}
