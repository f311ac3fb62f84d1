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

/** The data plane engines the lab can run (`core.proxy.engine`); the default is new stacks'. */
export const LAB_ENGINES = ["node", "haproxy"] as const;
export type LabEngine = (typeof LAB_ENGINES)[number];

/**
 * A lab setting chosen by `--<option> <value>` of this run, else the one the running lab has
 * (so a later `npm run lab` keeps it), else `fallback`. Kept in `.lab/<fileName>`.
 */
function remembered<T extends string | number>(
  fileName: string,
  option: string,
  requested: string | undefined,
  allowed: readonly T[],
  fallback: T,
  what: string,
): T {
  const file = labPath(fileName);
  if (requested !== undefined) {
    const value = allowed.find((a) => String(a) === requested);
    if (value === undefined)
      throw new LabError(`--${option} ${requested}: ${what} is ${allowed.join(" or ")}`);
    writeJson(file, { [option]: value });
    return value;
  }
  return readJson<Record<string, T>>(file)?.[option] ?? fallback;
}

/** The lab's region size: `--hosts N`, remembered. */
export const regionSize = (requested: string | undefined): RegionSize =>
  remembered("region.json", "hosts", requested, REGION_SIZES, 1, "the lab's region size (hosts)");

/** The lab's data plane engine: `--engine node|haproxy`, remembered. */
export const labEngine = (requested: string | undefined): LabEngine =>
  remembered(
    "engine.json",
    "engine",
    requested,
    LAB_ENGINES,
    "haproxy",
    "the lab's data plane engine",
  );

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
