/**
 * `gateway probe`: runs the gates (gates.ts) in order, each retried until its deadline (a
 * gateway that just restarted may need a few seconds for a handshake poll or a certificate
 * swap), prints one line per gate, and stops at the first that fails, naming it. Used by the
 * rollout step on a host (components/gateway-host.ts) and by the deploy workflow from outside.
 */
import { lookup } from "node:dns/promises";
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import type { Address } from "./connect.js";
import {
  certificateGate,
  healthGate,
  type RouteForm,
  readyGate,
  registrationsGate,
  routeGate,
  routeLabel,
} from "./gates.js";

export { formatAddress, parseAddress } from "./connect.js";
export { type RouteForm, routeLabel } from "./gates.js";

export interface ProbeOptions {
  readonly baseDomain: string;
  /** Probe every name at these addresses (a host probing itself), instead of resolving names. */
  readonly connect: readonly Address[];
  /** Fixed answers (curl's --resolve): a name, or `*.<base>` for every name one label below. */
  readonly resolve: ReadonlyMap<string, readonly string[]>;
  /** DNS servers (`ip:port`) to resolve names with; empty: the system's resolver. */
  readonly dnsServers: readonly string[];
  /** Port of the TLS listener at resolved addresses. */
  readonly port: number;
  readonly ca: readonly string[];
  /** The ready file and the service's main pid it must name. */
  readonly ready?: { readonly file: string; readonly pid: string } | undefined;
  /** The serial every address must serve; undefined: whatever the first address serves. */
  readonly expectedSerial?: string | undefined;
  readonly registrations?:
    | { readonly atLeast: number; readonly count: () => Promise<number> }
    | undefined;
  readonly health: boolean;
  readonly canary?: { readonly app: string; readonly forms: readonly RouteForm[] } | undefined;
  /** Bound on retrying one gate, ms. */
  readonly timeoutMs: number;
  /** Bound on one attempt (a connection, a request), ms. */
  readonly attemptTimeoutMs: number;
  readonly retryDelayMs?: number;
  readonly print: (line: string) => void;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** The gate that failed. */
  readonly failed?: string;
}

class GateFailed extends Error {
  constructor(readonly gate: string) {
    super(gate);
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

export async function runProbe(o: ProbeOptions): Promise<ProbeResult> {
  const gate = async <T>(name: string, attempt: () => Promise<T>, detail: (v: T) => string) => {
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      try {
        const value = await attempt();
        o.print(`ok   ${name}: ${detail(value)}`);
        return value;
      } catch (e) {
        if (Date.now() + (o.retryDelayMs ?? 1000) >= deadline) {
          o.print(`FAIL ${name}: ${e instanceof Error ? e.message : String(e)}`);
          throw new GateFailed(name);
        }
        await sleep(o.retryDelayMs ?? 1000);
      }
    }
  };
  const addresses = async (name: string): Promise<Address[]> => {
    if (o.connect.length > 0) return [...o.connect];
    const ips = await gate(
      `dns ${name}`,
      () => resolveName(o, name),
      (a) => a.join(", "),
    );
    return ips.map((host) => ({ host, port: o.port }));
  };
  const target = (address: Address) => ({ address, ca: o.ca, timeoutMs: o.attemptTimeoutMs });

  try {
    if (o.ready !== undefined) {
      const { file, pid } = o.ready;
      await gate(
        "ready",
        () => readyGate(file, pid),
        (d) => d,
      );
    }
    // The certificate, at every address of a name under the base domain; with no serial
    // known, every address must serve the first one's, so a region serves one certificate.
    const healthName = `health.${o.baseDomain}`;
    let serial = o.expectedSerial;
    for (const address of await addresses(healthName)) {
      const got = await gate(
        "certificate",
        () => certificateGate(target(address), healthName, serial),
        (r) => r.detail,
      );
      serial ??= got.serial;
    }
    if (o.registrations !== undefined) {
      const { atLeast, count } = o.registrations;
      await gate(
        "registrations",
        () => registrationsGate(count, atLeast),
        (d) => d,
      );
    }
    if (o.health) {
      for (const address of await addresses(healthName)) {
        await gate(
          "health",
          () => healthGate(target(address), o.baseDomain),
          (d) => d,
        );
      }
    }
    for (const form of o.canary?.forms ?? []) {
      const app = o.canary?.app as string;
      const label = routeLabel(app, form);
      for (const address of await addresses(`${label}.${o.baseDomain}`)) {
        await gate(
          `canary route ${label}`,
          () => routeGate(target(address), o.baseDomain, app, form),
          (d) => d,
        );
      }
    }
  } catch (e) {
    if (e instanceof GateFailed) {
      o.print(`probe failed: gate "${e.gate}"`);
      return { ok: false, failed: e.gate };
    }
    throw e;
  }
  o.print("probe passed: every gate");
  return { ok: true };
}

/** A name's addresses: a fixed answer, else DNS (the given servers, or the system's resolver). */
async function resolveName(o: ProbeOptions, name: string): Promise<string[]> {
  const fixed = o.resolve.get(name) ?? o.resolve.get(`*.${name.slice(name.indexOf(".") + 1)}`);
  if (fixed !== undefined) return [...fixed];
  if (o.dnsServers.length === 0) {
    const all = await lookup(name, { all: true });
    return [...new Set(all.map((a) => a.address))];
  }
  const resolver = new Resolver({ timeout: o.attemptTimeoutMs, tries: 2 });
  resolver.setServers([...o.dnsServers]);
  const found: string[] = [];
  const problems: string[] = [];
  for (const ask of [() => resolver.resolve4(name), () => resolver.resolve6(name)]) {
    try {
      found.push(...(await ask()));
    } catch (e) {
      problems.push((e as NodeJS.ErrnoException).code ?? String(e));
    }
  }
  if (found.length === 0) throw new Error(`${name} has no address (${problems.join(", ")})`);
  return found.filter((ip) => isIP(ip) !== 0);
}
