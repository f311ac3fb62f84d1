import type { Server } from "node:http";
import type { GatewayConfig } from "../config/index.js";
import type { Logger } from "../log/index.js";
import type { InstanceDirectory } from "../registry/index.js";
import { createCustomDomainResolver, LEGACY_APP_ADDRESS_PREFIX } from "./custom-domain.js";
import { startRedirect } from "./redirect.js";
import { TlsProxy } from "./server.js";
import { type DrainingFlag, SelfService } from "./self.js";
import { type ProxySnapshot, type ProxyStats, snapshotOf } from "./stats.js";
import { TlsTerminator } from "./terminate.js";
import type { TicketKeyRing } from "./tls-options.js";

export { compileRouter, type Route, RouteError } from "./route.js";
export {
  type AppSnapshot,
  mergeSnapshots,
  ProxyStats,
  type ProxySnapshot,
  snapshotOf,
} from "./stats.js";
export { DrainingFlag } from "./self.js";
export { TlsProxy } from "./server.js";
export { TlsTerminator } from "./terminate.js";
export { TicketKeyRing, type TicketKeys } from "./tls-options.js";

/** Bound on cached custom-domain answers (and on distinct names looked up at once). */
const CUSTOM_DOMAIN_CACHE_ENTRIES = 10_000;

export interface DataPlane {
  readonly proxy: TlsProxy;
  readonly terminator: TlsTerminator;
  readonly redirect: Server | undefined;
  /** Counters, open connections per instance and the certificate served, as plain data. */
  snapshot(): ProxySnapshot;
  stop(): Promise<void>;
}

/**
 * Starts the :443 proxy (and the :80 redirect) from the config. Ports may be overridden for
 * tests; everything else comes from `core.proxy`.
 */
export async function startDataPlane(
  config: GatewayConfig,
  deps: {
    directory: InstanceDirectory;
    log: Logger;
    stats?: ProxyStats;
    ticketKeys?: TicketKeyRing;
    /** This node draining: `health.<base>` answers 503. */
    draining?: DrainingFlag;
  },
  ports: { https?: number; http?: number } = {},
): Promise<DataPlane> {
  const p = config.core.proxy;
  const log = deps.log.child({ part: "proxy" });
  const terminator = await TlsTerminator.create({
    certFile: p.cert_chain,
    keyFile: p.cert_key,
    handshakeTimeoutMs: p.timeouts.handshake,
    log: (level, msg, fields) => log[level](fields ?? {}, msg),
    ...(deps.ticketKeys ? { ticketKeys: deps.ticketKeys } : {}),
  });
  const customDomains = createCustomDomainResolver({
    prefix: p.app_address_ns_prefix,
    legacyPrefix: LEGACY_APP_ADDRESS_PREFIX,
    ...(p.app_address_dns_servers.length > 0 ? { servers: p.app_address_dns_servers } : {}),
    timeoutMs: p.timeouts.dns_resolve,
    ttlCapMs: p.app_address_cache_ttl,
    negativeTtlMs: p.app_address_negative_ttl,
    maxEntries: CUSTOM_DOMAIN_CACHE_ENTRIES,
  });
  const stop: (() => Promise<void> | void)[] = [
    () => terminator.close(),
    () => customDomains.close(),
  ];
  try {
    const self = new SelfService({
      accountUrl: config.core.certbot.account_url,
      workdir: config.core.certbot.workdir,
      draining: deps.draining,
    });
    stop.push(async () => self.close());
    const proxyDeps = {
      directory: deps.directory,
      terminator,
      customDomains,
      self,
      log,
      ...(deps.stats ? { stats: deps.stats } : {}),
    };
    const proxy = await TlsProxy.start(p, proxyDeps, ports.https ?? p.listen_port);
    stop.unshift(() => proxy.close());
    const httpsPort = proxy.address().port;
    const redirect = p.http_redirect
      ? await startRedirect({
          address: p.listen_addr,
          port: ports.http ?? p.http_port,
          httpsPort,
          timeoutMs: p.timeouts.handshake,
        })
      : undefined;
    if (redirect)
      stop.unshift(() => new Promise<void>((resolve) => redirect.close(() => resolve())));
    log.info({ https: proxy.address(), redirect: redirect?.address() }, "data plane listening");
    return {
      proxy,
      terminator,
      redirect,
      snapshot: () =>
        snapshotOf(
          proxy.stats,
          { open: proxy.instanceConnections(), connectFailures: proxy.instanceConnectFailures() },
          terminator.current(),
        ),
      async stop() {
        for (const step of stop) await step();
      },
    };
  } catch (error) {
    for (const step of stop) await step();
    throw error;
  }
}
