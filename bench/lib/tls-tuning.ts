/**
 * The TLS settings HAProxy and nginx share as reference targets (docs/engine-spike.md,
 * "Differences between the two bench targets to even out", items 2-5), so the two differ by
 * their code, not by their defaults:
 * - the same curve list, in the order of the gateway's HAProxy engine (`engine/haproxy/render.ts`);
 * - TLS 1.2 and 1.3, stated in both;
 * - a shared session cache of the same capacity: HAProxy counts it in sessions (its default,
 *   20,000), nginx in bytes, about 4,000 sessions per MiB (its documentation), so 5 MiB;
 * - the same lifetime for a cached session or a ticket (both default to 5 minutes);
 * - tickets on, sealed with OpenSSL's own keys (random per process) in both. Not pinned keys:
 *   with `tls-ticket-keys` HAProxy 2.6 answers a TLS 1.3 resumption with no fresh ticket when
 *   the ticket was sealed with its current key, so a client that uses each ticket once (b)
 *   resumes every other time, while nginx with `ssl_session_ticket_key` renews every TLS 1.3
 *   ticket; with OpenSSL's keys both renew every one.
 */
/** OpenSSL names: nginx wants `prime256v1` where HAProxy takes `P-256`. */
export const CURVES = { haproxy: "X25519:P-256", nginx: "X25519:prime256v1" } as const;
export const SESSION_CACHE_SESSIONS = 20_000;
const NGINX_SESSIONS_PER_MIB = 4_000;
export const SESSION_LIFETIME_S = 300;

/** HAProxy's `global` lines. */
export function haproxyTlsGlobal(): string {
  return [
    `  ssl-default-bind-curves ${CURVES.haproxy}`,
    "  ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3",
    `  tune.ssl.cachesize ${SESSION_CACHE_SESSIONS}`,
    `  tune.ssl.lifetime ${SESSION_LIFETIME_S}`,
  ].join("\n");
}

/** nginx's `http` lines (its `ssl_protocols` are in the shared part already). */
export function nginxTls(name: string): string {
  const mib = Math.ceil(SESSION_CACHE_SESSIONS / NGINX_SESSIONS_PER_MIB);
  return [
    `  ssl_ecdh_curve ${CURVES.nginx};`,
    `  ssl_session_cache shared:${name}:${mib}m;`,
    `  ssl_session_timeout ${SESSION_LIFETIME_S}s;`,
    "  ssl_session_tickets on;",
  ].join("\n");
}
