/**
 * What the control-plane benches share: the stub attestation, the registration service's
 * settings, the CVM fleet they register, and the statistics.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import type { AppInfo } from "../../gateway-runtime/attest/app-info.js";
import type { Attestation } from "../../gateway-runtime/attest/types.js";
import { parseCidr } from "../../gateway-runtime/config/net.js";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import type { IpPlan } from "../../gateway-runtime/registry/allocate.js";
import type { RegistrationService } from "../../gateway-runtime/registration/service.js";

export const WG_IP = "10.4.0.1/16";
const RANGE = "10.4.0.0/20";
const RESERVED = "10.4.0.0/27";

/** The address plan of the benches: a /20 less the reserved /27, 4,064 addresses. */
export function benchPlan(): IpPlan {
  const fail = (): never => {
    throw new Error("bad built-in CIDR");
  };
  return {
    range: parseCidr(RANGE) ?? fail(),
    gatewayIp: parseCidr(WG_IP)?.address ?? fail(),
    reserved: [parseCidr(RESERVED) ?? fail()],
  };
}

/** Returns the ids encoded in the "certificate": `<app-id>:<instance-id>`. No crypto. */
export const stubAttestation: Attestation = {
  async verify(der) {
    const [appId = "", instanceId = ""] = der.toString("utf8").split(":");
    return { appId, instanceId, appInfo: {} as AppInfo, via: "ca" };
  },
};

/** `RegistrationService` settings the benches share (what a CVM is told; no recycling). */
export const BENCH_SETTINGS = {
  agent: {
    external_port: 443,
    internal_port: 8090,
    domain: "bench.example",
    app_address_ns_prefix: "_dstack-app-address",
  },
  recycleTimeoutMs: 36_000_000,
  attestation: stubAttestation,
} as const;

export interface BenchCvm {
  readonly appId: string;
  readonly instanceId: string;
  readonly publicKey: string;
}

/** `count` CVMs spread over `apps` apps, each with a fresh WireGuard key. */
export function fleet(count: number, apps: number): BenchCvm[] {
  const ids = Array.from({ length: apps }, () => randomBytes(20).toString("hex"));
  return Array.from({ length: count }, (_, k) => ({
    appId: ids[k % apps] as string,
    instanceId: randomBytes(20).toString("hex"),
    publicKey: generateWgKeyPair().publicKey,
  }));
}

/** One CVM's `RegisterCvm` through `service`, as the stub attestation reads it. */
export function registerCvm(service: RegistrationService, c: BenchCvm) {
  const der = Buffer.from(`${c.appId}:${c.instanceId}`);
  return service.register({ der, chain: [] }, { client_public_key: c.publicKey });
}

/** Runs `task` over `items` with `concurrency` in flight; resolves when every one is done. */
export async function inFlight<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let k = next++; k < items.length; k = next++) await task(items[k] as T, k);
    }),
  );
}

export const quantile = (sorted: readonly number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

export const median = (xs: readonly number[]): number =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

export async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const value = await fn();
  return [performance.now() - start, value];
}

/** The command line the control-plane benches share: how many CVMs, in flight, over how many apps. */
export function benchArgs(): { count: number; concurrency: number; apps: number; out?: string } {
  const { values } = parseArgs({
    options: {
      count: { type: "string", default: "4000" },
      concurrency: { type: "string", default: "128" },
      apps: { type: "string", default: "100" },
      out: { type: "string" },
    },
  });
  return {
    count: Number(values.count),
    concurrency: Number(values.concurrency),
    apps: Number(values.apps),
    ...(values.out === undefined ? {} : { out: values.out }),
  };
}
