/**
 * Before the CA is told to validate, every challenge TXT value must be visible on the servers
 * the CA will ask. We ask those servers directly, each through its own `node:dns` Resolver
 * (`setServers`), never the system resolver and its caches: `dns_check_servers`, else the
 * RFC 2136 primary, else the addresses of the zone's NS records. acme-client's own check
 * (`verifyChallenge`, which asks the system resolver) is never called.
 */
import { promises as dns } from "node:dns";
import { isIP } from "node:net";
import type { GatewayConfig } from "../config/index.js";
import type { Logger } from "../log/index.js";
import { CertError, reasonOf, sleep, throwIfAborted } from "./errors.js";

type Certbot = GatewayConfig["core"]["certbot"];

export interface PropagationOptions {
  /** `ip:port` servers that must all answer with every value. */
  readonly servers: readonly string[];
  readonly timeoutMs: number;
  /** Pause between rounds. @default 500 */
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
  readonly log?: Logger;
}

/** The configured servers to ask, or undefined when the zone's NS must be looked up. */
export function configuredCheckServers(certbot: Certbot): string[] | undefined {
  if (certbot.dns_check_servers.length > 0) return [...certbot.dns_check_servers];
  if (certbot.dns_provider === "rfc2136" && certbot.rfc2136.server !== undefined) {
    return [certbot.rfc2136.server];
  }
  return undefined;
}

/**
 * The addresses of the authoritative servers of the zone holding `name`: walks up from `name`
 * to the first name with NS records. This lookup (names of servers, not the challenge) is the
 * one place the system resolver is used; the TXT itself is asked of the servers found.
 */
export async function zoneNameServers(name: string): Promise<string[]> {
  const labels = name.replace(/\.$/, "").split(".");
  for (let i = 0; i < labels.length - 1; i++) {
    const zone = labels.slice(i).join(".");
    const ns = await dns.resolveNs(zone).catch(() => [] as string[]);
    if (ns.length === 0) continue;
    const addrs = await Promise.all(
      ns.map((host) => dns.lookup(host, { all: true }).catch(() => [])),
    );
    const found = addrs
      .flat()
      .map((a) => (a.family === 6 ? `[${a.address}]:53` : `${a.address}:53`));
    if (found.length > 0) return [...new Set(found)];
  }
  throw new CertError("E_CERT_DNS_PROPAGATION", `no authoritative name servers found for ${name}`);
}

/** `host:port` with a host name becomes one `ip:port` per address (Resolver takes IPs only). */
async function toIpEndpoints(server: string): Promise<string[]> {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(server);
  const host = m?.[1] ?? m?.[2] ?? server;
  const port = m?.[3] ?? "53";
  if (isIP(host) !== 0) return [isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`];
  const addrs = await dns.lookup(host, { all: true });
  return addrs.map((a) => (a.family === 6 ? `[${a.address}]:${port}` : `${a.address}:${port}`));
}

async function txtAt(resolver: dns.Resolver, name: string): Promise<string[]> {
  try {
    return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(""));
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOTFOUND" || code === "ENODATA") return [];
    throw e;
  }
}

/**
 * Resolves once every server answers TXT `name` with all of `values`; rejects with
 * E_CERT_DNS_PROPAGATION after `timeoutMs` naming the servers still missing a value.
 */
export async function waitForTxt(
  name: string,
  values: readonly string[],
  opts: PropagationOptions,
): Promise<void> {
  if (opts.servers.length === 0) {
    throw new CertError("E_CERT_DNS_PROPAGATION", "no DNS servers to check propagation against");
  }
  const deadline = Date.now() + opts.timeoutMs;
  const endpoints = (await Promise.all(opts.servers.map(toIpEndpoints))).flat();
  const pending = new Map<string, string>(endpoints.map((e) => [e, "not asked yet"]));
  const resolvers = new Map<string, dns.Resolver>();
  for (const e of endpoints) {
    const r = new dns.Resolver({
      timeout: Math.min(2000, Math.max(100, opts.timeoutMs)),
      tries: 1,
    });
    r.setServers([e]);
    resolvers.set(e, r);
  }
  const cancel = (): void => {
    for (const r of resolvers.values()) r.cancel();
  };
  opts.signal?.addEventListener("abort", cancel, { once: true });
  try {
    for (let round = 1; ; round++) {
      throwIfAborted(opts.signal);
      await Promise.all(
        [...pending.keys()].map(async (server) => {
          try {
            const seen = await txtAt(resolvers.get(server) as dns.Resolver, name);
            const missing = values.filter((v) => !seen.includes(v));
            if (missing.length === 0) pending.delete(server);
            else pending.set(server, `${missing.length} of ${values.length} values missing`);
          } catch (e) {
            pending.set(server, reasonOf(e));
          }
        }),
      );
      throwIfAborted(opts.signal);
      if (pending.size === 0) {
        opts.log?.debug({ name, rounds: round }, "challenge TXT visible on every check server");
        return;
      }
      const wait = Math.min(opts.intervalMs ?? 500, deadline - Date.now());
      if (wait <= 0) break;
      await sleep(wait, opts.signal);
    }
  } finally {
    opts.signal?.removeEventListener("abort", cancel);
    cancel();
  }
  const where = [...pending].map(([s, why]) => `${s} (${why})`).join(", ");
  throw new CertError(
    "E_CERT_DNS_PROPAGATION",
    `TXT ${name} not visible within ${opts.timeoutMs} ms on ${where}`,
  );
}
