import type { Instance } from "./index.js";

/**
 * The port policy on the data path. Effective policy: the one the instance reported at its
 * latest registration; without one, the gateway's config decides (every port open, the PROXY
 * header from `proxy_protocol` and `app_overrides`). dstack closes every port of an instance
 * whose policy is unknown while it asks the CVM for one; this gateway has no such fetch, so an
 * older CVM that reports nothing keeps working as it did.
 */

/** Whether the proxy may dial `port` of `instance`. */
export function portAllowed(instance: Instance, port: number): boolean {
  const policy = instance.portPolicy;
  if (policy === undefined || !policy.restrict_mode) return true;
  return policy.ports.some((p) => p.port === port);
}

/** The policy's PROXY header choice for `port`; undefined where it says nothing (the config decides). */
export function policyProxyHeader(instance: Instance, port: number): boolean | undefined {
  return instance.portPolicy?.ports.find((p) => p.port === port)?.pp;
}
