import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { TLSSocket } from "node:tls";
import type { GatewayConfig } from "../config/index.js";
import { GatewayError, ignoreError } from "../errors.js";
import { listenOn } from "../listen/index.js";
import type { Logger } from "../log/index.js";
import {
  type Instance,
  type InstanceDirectory,
  policyProxyHeader,
  portAllowed,
} from "../registry/index.js";
import { bridge, type BridgeResult, type BridgeTimeouts } from "./bridge.js";
import { raceConnect, settleBoth } from "./connect.js";
import type { CustomDomainResolver } from "./custom-domain.js";
import { readClientHello } from "./peek.js";
import { type DecodedProxyV2, encodeProxyV2, type ProxyAddresses } from "./proxy-protocol.js";
import { compileRouter, type Router } from "./route.js";
import type { SelfService } from "./self.js";
import { InstanceSelector } from "./select.js";
import {
  announceCustomDomain,
  type CustomDomainHook,
  listenOnPath,
  readProxyHeader,
  SlowPathError,
} from "./slow-path.js";
import { ProxyStats } from "./stats.js";
import { appTarget, RejectError, type Target, withApp } from "./target.js";
import type { AlpnMode, TlsTerminator } from "./terminate.js";

export interface ProxyDeps {
  readonly directory: InstanceDirectory;
  readonly terminator: TlsTerminator;
  readonly customDomains: CustomDomainResolver;
  /** Serves `health.<base>` and `gateway.<base>`. */
  readonly self: SelfService;
  readonly log: Logger;
  readonly stats?: ProxyStats;
  /** A custom domain's TXT answer routed a connection (slow-path.ts). */
  readonly onCustomDomain?: CustomDomainHook;
}

type ProxyConfig = GatewayConfig["core"]["proxy"];

/** How often a drain looks whether the last connection has ended. */
const DRAIN_POLL_MS = 100;

/**
 * The :443 listener. Per connection: read the ClientHello, route its SNI, pick instances,
 * then either pass every byte through or terminate TLS, and bridge bytes to the instance.
 */
export class TlsProxy {
  readonly stats: ProxyStats;
  readonly #server: Server;
  readonly #deps: ProxyDeps;
  readonly #config: ProxyConfig;
  readonly #route: Router;
  readonly #selector: InstanceSelector;
  readonly #timeouts: BridgeTimeouts;
  readonly #sockets = new Set<Socket>();
  /** The slow path's socket behind HAProxy: every connection starts with a PROXY v2 header. */
  readonly #slowPath: string | undefined;
  /**
   * A terminated connection's raw socket shares its native handle with the TLS socket; Node 20
   * can then write to a reused descriptor if the raw one is destroyed first. So once wrapped,
   * only the TLS socket is ever destroyed.
   */
  readonly #tlsOf = new WeakMap<Socket, TLSSocket>();
  /** A socket's 'close' listener, `this` being the socket. */
  readonly #forget: (this: Socket) => void;

  private constructor(config: ProxyConfig, deps: ProxyDeps, slowPath?: string) {
    this.#config = config;
    this.#deps = deps;
    this.#slowPath = slowPath;
    this.stats = deps.stats ?? new ProxyStats();
    this.#route = compileRouter({ baseDomain: config.base_domain });
    this.#selector = new InstanceSelector(deps.directory, {
      topN: config.connect_top_n,
      cacheMs: config.timeouts.cache_top_n,
      healthyAgeMs: config.healthy_handshake_age,
      balance: config.balance,
    });
    const t = config.timeouts;
    this.#timeouts = {
      idleMs: t.idle,
      writeMs: t.write,
      shutdownMs: t.shutdown,
      totalMs: t.total,
      dataTimeouts: t.data_timeout_enabled,
    };
    const sockets = this.#sockets;
    this.#forget = function (this: Socket) {
      sockets.delete(this);
    };
    this.#server = createServer({ noDelay: true, pauseOnConnect: true }, (socket) =>
      this.#accept(socket),
    );
  }

  /** Listens on `fd` when the port was handed over (listen/activation.ts), else binds `port`. */
  static async start(
    config: ProxyConfig,
    deps: ProxyDeps,
    port = config.listen_port,
    fd?: number,
  ): Promise<TlsProxy> {
    const proxy = new TlsProxy(config, deps);
    await listenOn(proxy.#server, { fd, port, host: config.listen_addr, backlog: 4096 });
    return proxy;
  }

  /**
   * The slow path behind the HAProxy engine (slow-path.ts): listens on the Unix socket `path`
   * (mode 0600, a stale socket replaced); each connection's PROXY v2 header is read and its
   * source used as the client's address, then the connection goes on as on :443.
   */
  static async startSlowPath(
    config: ProxyConfig,
    deps: ProxyDeps,
    path: string,
  ): Promise<TlsProxy> {
    const proxy = new TlsProxy(config, deps, path);
    await listenOnPath(proxy.#server, path);
    return proxy;
  }

  /** Open connections per instance id. */
  instanceConnections(): ReadonlyMap<string, number> {
    return this.#selector.allActive();
  }

  /** Failed connects per instance id since start (masked by the race when another answered). */
  instanceConnectFailures(): ReadonlyMap<string, number> {
    return this.#selector.connectFailures();
  }

  /** The TCP address; on the slow path, see `path`. */
  address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }

  /** The Unix socket of the slow path, else undefined. */
  path(): string | undefined {
    return this.#slowPath; // the server's own address is the name it was bound to first
  }

  /** Stops accepting, ends every open connection, and resolves when the listener is closed. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // Destroying the client side ends every bridge; a connect still in flight finds its client
    // gone and closes what it opened. (No shared AbortSignal: a listener per connection on
    // one EventTarget costs time that grows with the number of open connections.)
    for (const socket of this.#sockets) this.#destroy(socket);
    await closed;
  }

  /**
   * The old generation's half of a hand-over: stops accepting (the listening socket itself
   * stays open where it came from, so connections queue for the next generation), lets the
   * open connections run, and ends those still open after `timeoutMs`. Resolves with how
   * many it ended.
   */
  async drain(timeoutMs: number): Promise<number> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // Our own set, not the server's 'close': the server stops counting a connection whose raw
    // socket has closed while its TLS socket may still be finishing (seen: cut at once).
    const deadline = performance.now() + timeoutMs;
    while (this.#sockets.size > 0 && performance.now() < deadline) {
      await sleep(Math.min(DRAIN_POLL_MS, Math.max(1, deadline - performance.now())));
    }
    const cut = this.#sockets.size;
    for (const socket of this.#sockets) this.#destroy(socket);
    await closed;
    return cut;
  }

  /** The TLS handshake, timed (successful ones only: a failure's time says nothing of ours). */
  async #terminate(
    socket: Socket,
    data: Buffer,
    mode: AlpnMode,
    alpn: readonly string[] | undefined,
  ): Promise<TLSSocket> {
    const start = performance.now();
    const tls = await this.#deps.terminator.terminate(socket, data, mode, alpn);
    this.stats.timings.handshake(secondsSince(start));
    this.#tlsOf.set(socket, tls);
    return tls;
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once("close", this.#forget); // shared listeners: no closures per connection
    socket.on("error", ignoreError);
    void this.#serve(socket);
  }

  async #serve(socket: Socket): Promise<void> {
    let relayed: DecodedProxyV2 | undefined;
    if (this.#slowPath !== undefined) {
      try {
        relayed = await readProxyHeader(socket, this.#config.timeouts.handshake);
      } catch (error) {
        this.#reject(socket, error);
        return;
      }
    }
    // The client's address costs a getpeername() per connection: read only when a setting
    // uses it (the PROXY header reads its own). Behind HAProxy it is the header's, at no cost.
    const limited = this.#config.max_connections_per_ip > 0;
    const ip =
      relayed?.sourceAddress ??
      (limited || this.#config.balance === "ip_hash" ? (socket.remoteAddress ?? "") : "");
    const perIp = limited ? this.stats.ipOpened(ip) : 0;
    try {
      await this.#handle(socket, ip, perIp, relayed);
    } catch (error) {
      this.#reject(socket, error, relayed);
    } finally {
      if (limited) this.stats.ipClosed(ip);
    }
  }

  async #handle(
    socket: Socket,
    ip: string,
    perIp: number,
    relayed: ProxyAddresses | undefined,
  ): Promise<void> {
    const maxPerIp = this.#config.max_connections_per_ip;
    if (maxPerIp > 0 && perIp > maxPerIp) {
      throw new RejectError("E_LIMIT_IP", `client ${ip} has ${maxPerIp} open connections already`);
    }
    const { hello, data } = await readClientHello(socket, this.#config.timeouts.handshake);
    const route = this.#route(hello.serverName);
    if (route.kind === "self") {
      const tls = await this.#terminate(socket, data, "http1", hello.alpn);
      this.#deps.self.serve(route.name, tls);
      return;
    }
    const target = route.kind === "app" ? appTarget(route) : await this.#custom(route.name);
    const selection = this.#selector.select(target.id, ip);
    if (selection.kind === "unknown") {
      const code = target.custom ? "E_CUSTOM_UNKNOWN_APP" : "E_ROUTE_UNKNOWN_APP";
      throw new RejectError(code, `no app or instance "${target.id}" (SNI ${hello.serverName})`);
    }
    if (selection.kind === "unhealthy") {
      throw withApp(
        new RejectError("E_NO_HEALTHY_INSTANCE", `app ${selection.appId} has no healthy instance`),
        selection.appId,
      );
    }
    const appId = selection.appId;
    // The instances' port policies, before anything is dialled or counted as open.
    // Copied only when a policy closes the port to some candidate: the common case allocates nothing.
    const all = selection.candidates;
    const candidates = all.every((c) => portAllowed(c, target.port))
      ? all
      : all.filter((c) => portAllowed(c, target.port));
    if (candidates.length === 0) {
      throw withApp(
        new RejectError(
          "E_PORT_NOT_ALLOWED",
          `port ${target.port} is closed by the port policy of app ${appId}'s instances`,
        ),
        appId,
      );
    }
    const override = this.#config.app_overrides[appId];
    const maxPerApp = override?.max_connections ?? this.#config.max_connections_per_app;
    if (maxPerApp > 0 && this.stats.activeForApp(appId) >= maxPerApp) {
      throw withApp(
        new RejectError("E_LIMIT_APP", `app ${appId} has ${maxPerApp} open connections already`),
        appId,
      );
    }

    this.stats.opened(appId);
    let instanceId: string | undefined;
    let moved: Pick<BridgeResult, "bytesToBackend" | "bytesToClient"> & {
      end?: BridgeResult["end"];
    } = {
      bytesToBackend: 0,
      bytesToClient: 0,
    };
    try {
      const dialled = performance.now();
      const connecting = raceConnect(candidates, target.port, this.#config.timeouts.connect, {
        reuseReads: target.mode === "passthrough",
        attemptDelayMs: this.#config.connect_attempt_delay,
        failures: this.#selector,
      }).then((connected) => {
        this.stats.timings.connect(secondsSince(dialled));
        return connected;
      });
      // The instance's policy decides for the ports it lists; the config for the others.
      const configHeader = override?.proxy_protocol ?? this.#config.proxy_protocol;
      const headerFor = (instance: Instance) =>
        (policyProxyHeader(instance, target.port) ?? configHeader)
          ? this.#proxyHeader(socket, relayed)
          : undefined;
      if (target.mode === "passthrough") {
        const { socket: backend, instance, reads } = await connecting;
        if (socket.destroyed) {
          backend.destroy();
          return;
        }
        instanceId = instance.id;
        this.#selector.acquire(instance.id);
        const header = headerFor(instance);
        const initial = header ? Buffer.concat([header, data]) : data;
        moved = await bridge(socket, backend, this.#timeouts, {
          initial,
          ...(reads ? { backendReads: reads } : {}),
        });
      } else {
        const mode = target.mode === "h2" ? "h2" : "http1";
        const terminating = this.#terminate(socket, data, mode, hello.alpn);
        const [tls, connected] = await settleBoth(terminating, connecting);
        if (tls.destroyed) {
          connected.socket.destroy();
          return;
        }
        instanceId = connected.instance.id;
        this.#selector.acquire(instanceId);
        const header = headerFor(connected.instance);
        moved = await bridge(
          tls,
          connected.socket,
          this.#timeouts,
          header ? { initial: header } : {},
        );
      }
    } catch (error) {
      throw withApp(error, appId);
    } finally {
      if (instanceId !== undefined) this.#selector.release(instanceId);
      this.stats.closed(appId, moved.bytesToBackend, moved.bytesToClient);
      const log = this.#deps.log;
      if (log.isLevelEnabled("debug"))
        log.debug({ appId, instanceId, ...moved }, "connection closed");
    }
  }

  async #custom(name: string): Promise<Target> {
    const address = await this.#deps.customDomains.resolveTimed(name);
    const hook = this.#deps.onCustomDomain;
    if (hook !== undefined) announceCustomDomain(hook, address, this.#deps.log);
    return {
      appId: address.appId,
      id: address.appId,
      port: address.port,
      mode: "passthrough",
      custom: true,
    };
  }

  /** The header for the backend: the relayed addresses on the slow path, else the socket's. */
  #proxyHeader(socket: Socket, relayed: ProxyAddresses | undefined): Buffer {
    if (relayed !== undefined) return encodeProxyV2(relayed);
    return encodeProxyV2({
      sourceAddress: socket.remoteAddress ?? "0.0.0.0",
      sourcePort: socket.remotePort ?? 0,
      destAddress: socket.localAddress ?? "0.0.0.0",
      destPort: socket.localPort ?? 0,
    });
  }

  #destroy(socket: Socket): void {
    (this.#tlsOf.get(socket) ?? socket).destroy();
  }

  #reject(socket: Socket, error: unknown, relayed?: ProxyAddresses): void {
    this.#destroy(socket);
    const code = error instanceof GatewayError ? error.code : "E_INTERNAL";
    const appId = (error as { appId?: string }).appId;
    this.stats.rejected(code, appId);
    const client = relayed?.sourceAddress ?? socket.remoteAddress;
    const fields = { code, appId, client };
    if (code === "E_INTERNAL") this.#deps.log.error({ ...fields, err: error }, "connection failed");
    // Only HAProxy connects to the slow path (a 0600 socket): a bad header is a misconfiguration
    // to see, not a client's noise.
    else if (error instanceof SlowPathError) this.#deps.log.warn(fields, error.message);
    else this.#deps.log.debug(fields, (error as Error).message);
  }
}

const secondsSince = (start: number): number => (performance.now() - start) / 1000;
