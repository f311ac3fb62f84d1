import type { Server } from "node:http";
import type { GatewayConfig } from "../config/index.js";
import type { ListenFds } from "../listen/index.js";
import type { Logger } from "../log/index.js";
import type { InstanceDirectory } from "../registry/index.js";
import { createCustomDomainResolver, LEGACY_APP_ADDRESS_PREFIX } from "./custom-domain.js";
import { startRedirect } from "./redirect.js";
import { TlsProxy } from "./server.js";
import type { CustomDomainHook } from "./slow-path.js";
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
export { type MetricJson, ProxyTimings } from "./timings.js";
export { DrainingFlag } from "./self.js";
export { TlsProxy } from "./server.js";
export { type CustomDomainHook, SlowPathError } from "./slow-path.js";
export { TlsTerminator } from "./terminate.js";
export { TicketKeyRing, type TicketKeys } from "./tls-options.js";

/** Bound on cached custom-domain answers (and on distinct names looked up at once). */
const CUSTOM_DOMAIN_CACHE_ENTRIES = 10_000;

export interface DataPlane {
  readonly proxy: TlsProxy;
  readonly terminator: TlsTerminator;
  readonly redirect: Server | undefined;
  /** Counters, open connections per instance and the certificate served, as plain data. */
  snapshot(): Promise<ProxySnapshot>;
  /** Ends every connection now and closes the listeners. */
  stop(): Promise<void>;
  /**
   * Hand-over (TlsProxy.drain): stops accepting, lets open connections finish for up to
   * `timeoutMs`, ends the rest; resolves with how many it ended. Use instead of `stop`.
   */
  drain(timeoutMs: number): Promise<number>;
}

/** Where the data plane listens: the public ports (the Node engine), or HAProxy's slow path. */
export type DataPlaneListen =
  | { https?: number; http?: number; fds?: ListenFds; slowPathSocket?: undefined }
  | {
      /**
       * The HAProxy engine's slow path (`<engine dir>/node.sock`, layout.ts `FILES.slowPath`):
       * only this Unix socket, every connection starting with a PROXY v2 header; no TCP port,
       * no :80 redirect (HAProxy owns the public ports).
       */
      slowPathSocket: string;
      https?: undefined;
      http?: undefined;
      fds?: undefined;
    };

/**
 * Starts the :443 proxy (and the :80 redirect) from the config. Ports may be overridden for
 * tests, or handed over as listening descriptors (`fds`); everything else comes from `core.proxy`.
 * With `slowPathSocket`, the same proxy listens on that Unix socket instead, behind HAProxy.
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
    /** A custom domain's TXT answer routed a connection (slow-path.ts `CustomDomainHook`). */
    onCustomDomain?: CustomDomainHook;
  },
  ports: DataPlaneListen = {},
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
  // What both `stop` and `drain` release once the listeners are done.
  const release: (() => Promise<void> | void)[] = [
    () => terminator.close(),
    () => customDomains.close(),
  ];
  let opened: TlsProxy | undefined; // closed again when a later step fails
  try {
    const self = new SelfService({
      accountUrl: config.core.certbot.account_url,
      workdir: config.core.certbot.workdir,
      draining: deps.draining,
    });
    release.push(async () => self.close());
    const proxyDeps = {
      directory: deps.directory,
      terminator,
      customDomains,
      self,
      log,
      ...(deps.stats ? { stats: deps.stats } : {}),
      ...(deps.onCustomDomain ? { onCustomDomain: deps.onCustomDomain } : {}),
    };
    const slowPath = ports.slowPathSocket;
    const proxy: TlsProxy =
      slowPath !== undefined
        ? await TlsProxy.startSlowPath(p, proxyDeps, slowPath)
        : await TlsProxy.start(p, proxyDeps, ports.https ?? p.listen_port, ports.fds?.tls);
    opened = proxy;
    const redirect =
      p.http_redirect && slowPath === undefined
        ? await startRedirect({
            address: p.listen_addr,
            port: ports.http ?? p.http_port,
            fd: ports.fds?.http,
            httpsPort: proxy.address().port,
            timeoutMs: p.timeouts.handshake,
          })
        : undefined;
    const closeRedirect = () =>
      redirect ? new Promise<void>((resolve) => redirect.close(() => resolve())) : undefined;
    const where =
      slowPath !== undefined
        ? { slowPath }
        : { https: proxy.address(), redirect: redirect?.address() };
    log.info(where, "data plane listening");
    return {
      proxy,
      terminator,
      redirect,
      snapshot: async () =>
        snapshotOf(
          proxy.stats,
          { open: proxy.instanceConnections(), connectFailures: proxy.instanceConnectFailures() },
          terminator.current(),
          await proxy.stats.timings.json(),
        ),
      async stop() {
        await closeRedirect();
        await proxy.close();
        for (const step of release) await step();
      },
      async drain(timeoutMs) {
        // Redirects are answered at once (no keep-alive): its close needs no bound of its own.
        const redirectClosed = closeRedirect();
        const cut = await proxy.drain(timeoutMs);
        redirect?.closeAllConnections();
        await redirectClosed;
        for (const step of release) await step();
        return cut;
      },
    };
  } catch (error) {
    await opened?.close();
    for (const step of release) await step();
    throw error;
  }
}
