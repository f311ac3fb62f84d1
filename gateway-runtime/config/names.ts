/**
 * Which names the gateway's one certificate carries, and where its CAA records go. Pure; the
 * certificate manager orders these names, the program writes the CAA records of `caaNames`
 * before the first deploy (components/gateway-dns.ts), and the manager keeps them pinned.
 *
 * `core.rpc_domain` may lie outside `*.<base_domain>` (dstack's seed config: `gateway.example.com`
 * beside `app.example.com`). It is then one more name of the same certificate rather than a
 * second certificate: the region already shares one pair through etcd, renews it under one lock
 * and one rate ledger, and the RPC port already reloads the proxy's files. A second certificate
 * would double all of that and its orders against the CA's limits, and would not reach a name
 * the DNS provider cannot write anyway: the provider has one zone per config (Cloudflare's zone
 * id, RFC 2136's zone), so rpc_domain must be in that zone either way (config/checks.ts).
 */

/** True when `name` is one of `names`, or one label under a `*.` name among them. */
export function covered(names: readonly string[], name: string): boolean {
  const n = name.toLowerCase();
  return names.some((pattern) => {
    const p = pattern.toLowerCase();
    if (!p.startsWith("*.")) return p === n;
    const dot = n.indexOf(".");
    return dot > 0 && n.slice(dot + 1) === p.slice(2);
  });
}

/** `*.<base>` and `<base>`, and `rpcDomain` unless those cover it. */
export function certificateNames(baseDomain: string, rpcDomain: string): string[] {
  const names = [`*.${baseDomain}`, baseDomain];
  return covered(names, rpcDomain) ? names : [...names, rpcDomain];
}

/** True when `name` is `domain` or below it. */
export function within(name: string, domain: string): boolean {
  const n = name.toLowerCase();
  const d = domain.toLowerCase();
  return n === d || n.endsWith(`.${d}`);
}

/**
 * Where the CAA records go: the base domain, whose records a CA also finds for every name below
 * it (RFC 8659 climbs from the name to its parents), and rpc_domain itself when it is not below
 * the base domain.
 */
export function caaNames(baseDomain: string, rpcDomain: string): string[] {
  return within(rpcDomain, baseDomain) ? [baseDomain] : [baseDomain, rpcDomain];
}
