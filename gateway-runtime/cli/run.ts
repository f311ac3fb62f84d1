import { dirname, join } from "node:path";
import {
  type AdminAuth,
  AdminServer,
  type AdminView,
  authFailures,
  resolveAdminAuth,
} from "../admin/index.js";
import { type CertificateManager, openCertificateManager } from "../certs/index.js";
import type { NodeMembership } from "../cluster/index.js";
import { ProxyWorkers, type WorkersSnapshot } from "../workers/index.js";
import {
  configRisks,
  type GatewayConfig,
  loadConfigFileNoting,
  noEffectMessage,
  toRedactedObject,
} from "../config/index.js";
import { engineDir } from "../engine/haproxy/engine.js";
import { startHaproxyPlane } from "../engine/haproxy/plane.js";
import { retireHaproxy } from "../engine/haproxy/process.js";
import { writeFileAtomic } from "../files/atomic.js";
import { GATEWAY_VERSION } from "../version.js";
import { handedOver, inheritedListeners, type ListenFds } from "../listen/index.js";
import { createLogger, type Logger, RecentErrors } from "../log/index.js";
import { DrainingFlag, ProxyStats, startDataPlane } from "../proxy/index.js";
import { type RegistrationService, startRegistration } from "../registration/index.js";
import { MemoryDirectory } from "../registry/index.js";
import type { RpcServer } from "../rpc/index.js";

export const runHelp = `Usage: gateway run --config FILE [--ready-file FILE]

Starts the gateway with the config in FILE (.toml, .json, .yaml). Listening sockets passed by
systemd (LISTEN_FDS, names tls, http, rpc) are used instead of binding the ports; then SIGTERM
is a hand-over: the proxy processes drain for core.proxy.drain_timeout while the next start
serves from the same sockets. --ready-file: written with this process's pid once it serves.
SIGHUP reloads the TLS certificate from its files; SIGUSR2 renews it now (ACME);
SIGTERM or SIGINT stops cleanly. The admin call Exit stops as SIGTERM does ({"force": true}:
at once), then exits with status 75, so that the unit (Restart=on-failure) starts it again.`;

/**
 * The exit status after an admin `Exit`: not 0, so systemd's `Restart=on-failure` starts the
 * gateway again (an operator's Exit is a restart, as in dstack's deployments); 75 is
 * EX_TEMPFAIL, "try again".
 */
export const EXIT_RESTART = 75;

/** What every part of a running gateway shares. */
export interface RunContext {
  readonly config: GatewayConfig;
  /** Where `config` came from (proxy workers load it themselves). */
  readonly configFile: string;
  /** Where this generation writes its pid once it serves (`--ready-file`). */
  readonly readyFile?: string | undefined;
  /** Listening sockets handed to this process (systemd socket activation); empty otherwise. */
  readonly listenFds: ListenFds;
  readonly log: Logger;
  readonly directory: MemoryDirectory;
  readonly stats: ProxyStats;
  /** This node draining (a region's operator status): registration sets it, the health name reads it. */
  readonly draining: DrainingFlag;
  /** Parts that serve the certificate re-read it when it changes (renewal or SIGHUP). */
  readonly certificateListeners: (() => Promise<void>)[];
  /** The latest error log lines (the admin dashboard). */
  readonly recentErrors: RecentErrors;
  /** Stops the gateway as a signal does, then exits with `code` (admin `Exit`). */
  readonly stop: (reason: string, code: number) => void;
  /** Resolved before any part starts, so a gateway without admin credentials orders nothing. */
  readonly adminAuth: AdminAuth | undefined;
  /** What the admin API reads, set by the parts that own it as they start. */
  readonly admin: {
    proxy?: () => Promise<WorkersSnapshot>;
    certificates?: CertificateManager;
    registration?: RegistrationService;
    /** The registration RPC server: the certificate it serves, for the metrics. */
    rpc?: RpcServer;
    region?: NodeMembership;
  };
}

/** A part of the gateway; parts start in order and stop in reverse. */
export interface Part {
  readonly name: string;
  enabled(config: GatewayConfig): boolean;
  start(ctx: RunContext): Promise<{ stop(): Promise<void> }>;
}

const certificates: Part = {
  name: "certificate manager (ACME)",
  enabled: (config) => config.core.certbot.enabled,
  async start(ctx) {
    const manager = await openCertificateManager({ config: ctx.config, log: ctx.log });
    await manager.start();
    ctx.log.info("waiting for a valid certificate before serving");
    await manager.whenReady();
    const unsubscribe = manager.onCertificate(() => notify(ctx));
    ctx.admin.certificates = manager;
    // SIGUSR2: renew now, whatever the expiry (an operator's "renew now"; rate limits still apply).
    const renewNow = () => {
      ctx.log.info("SIGUSR2: renewing the certificate now");
      manager.checkNow({ force: true }).then(
        (outcome) =>
          ctx.log.info(
            { outcome: outcome.action, reason: outcome.reason },
            "forced renewal finished",
          ),
        (error: unknown) => ctx.log.error({ err: error }, "forced renewal failed"),
      );
    };
    process.on("SIGUSR2", renewNow);
    return {
      async stop() {
        process.off("SIGUSR2", renewNow);
        unsubscribe();
        await manager.stop();
      },
    };
  },
};

/**
 * The HAProxy engine (engine/haproxy/plane.ts): HAProxy on the public ports, the Node data
 * plane as its slow path. At a hand-over (sockets from systemd) this generation leaves HAProxy
 * running for the next one to adopt; otherwise stopping the gateway stops HAProxy.
 */
async function startHaproxyData(ctx: RunContext): Promise<{ stop(): Promise<void> }> {
  const plane = await startHaproxyPlane(
    ctx.config,
    { directory: ctx.directory, log: ctx.log, draining: ctx.draining, readyFile: ctx.readyFile },
    { tls: ctx.listenFds.tls, http: ctx.listenFds.http },
  );
  ctx.certificateListeners.push(() => plane.reloadCertificate());
  ctx.admin.proxy = async () => ({ ...(await plane.snapshot()), workers: 1 });
  return { stop: () => (handedOver(ctx.listenFds) ? plane.handOver() : plane.stop()) };
}

const dataPlane: Part = {
  name: "TLS proxy (data plane)",
  enabled: () => true,
  async start(ctx) {
    if (ctx.config.core.proxy.engine === "haproxy") return startHaproxyData(ctx);
    const { workers: count, drain_timeout: drainTimeoutMs } = ctx.config.core.proxy;
    // Handed-over sockets: connections must live in processes that outlive this one (a
    // hand-over stops this one at once), so the proxy runs in workers even when there is one.
    if (count > 1 || handedOver(ctx.listenFds)) {
      const workers = await ProxyWorkers.start({
        count,
        configFile: ctx.configFile,
        directory: ctx.directory,
        draining: ctx.draining,
        log: ctx.log.child({ part: "proxy" }),
        listenFds: ctx.listenFds,
        readyFile: ctx.readyFile,
        drainTimeoutMs,
        ticketKeyFile: join(dirname(ctx.config.core.state_path), "ticket-keys.json"),
      });
      ctx.certificateListeners.push(async () => workers.reloadCertificate());
      ctx.admin.proxy = () => workers.snapshot();
      // Serving now: a HAProxy left by an earlier haproxy-engine generation may go.
      await retireHaproxy(engineDir(ctx.config), ctx.log);
      return { stop: () => workers.stop() };
    }
    const plane = await startDataPlane(ctx.config, ctx);
    await retireHaproxy(engineDir(ctx.config), ctx.log);
    ctx.admin.proxy = async () => ({ snapshot: await plane.snapshot(), workers: 1, answered: 1 });
    ctx.certificateListeners.push(async () => {
      await plane.terminator.reload();
    });
    return { stop: () => plane.stop() };
  },
};

const registration: Part = {
  name: "registration RPC and WireGuard",
  enabled: () => true,
  async start(ctx) {
    const started = await startRegistration(ctx.config, ctx, { rpcFd: ctx.listenFds.rpc });
    ctx.admin.registration = started.service;
    ctx.admin.rpc = started.rpc;
    if (started.region) ctx.admin.region = started.region;
    ctx.certificateListeners.push(() => started.rpc.reloadCertificate());
    return { stop: () => started.stop() };
  },
};

const admin: Part = {
  name: "admin API and metrics",
  enabled: (config) => config.core.admin.enabled,
  async start(ctx) {
    const { config } = ctx;
    const startedAtMs = Date.now();
    const { proxy, certificates, registration, rpc, region } = ctx.admin;
    if (!proxy) throw new Error("the admin API starts after the data plane");
    const auth = ctx.adminAuth ?? (await resolveAdminAuth(config.core.admin));
    const view = async (): Promise<AdminView> => {
      const { snapshot, workers, answered } = await proxy();
      const served = rpc?.certificate();
      return {
        nowMs: Date.now(),
        startedAtMs,
        baseDomain: config.core.proxy.base_domain,
        healthyHandshakeAgeMs: config.core.proxy.healthy_handshake_age,
        proxy: snapshot,
        workers: { running: workers, answered },
        instances: ctx.directory.all(),
        ...(certificates ? { certbot: certificates.status() } : {}),
        ...(served
          ? { rpcCertificate: { serial: served.serial, notAfterMs: served.notAfter.getTime() } }
          : {}),
        ...(registration ? { timings: await registration.latency.json() } : {}),
        adminAuthFailures: authFailures(auth),
      };
    };
    const { address, port, socket } = config.core.admin;
    const server = await AdminServer.start({
      listen: socket === undefined ? { address, port } : { socket },
      auth,
      urls: { url: config.core.sync.my_url ?? "", bootnode: config.core.sync.bootnode ?? "" },
      sources: {
        view,
        reloadCertificate: () => notify(ctx),
        ...(certificates
          ? {
              renewCertificate: () => certificates.checkNow({ force: true }),
              setCaa: () => certificates.setCaa(),
            }
          : {}),
        ...(registration ? { instances: registration } : {}),
        ...(region ? { region } : {}),
        exit: (force) => {
          if (!force) return ctx.stop("admin Exit", EXIT_RESTART);
          ctx.log.warn("admin Exit with force: exiting now");
          process.exit(EXIT_RESTART);
        },
        recentErrors: ctx.recentErrors,
        version: GATEWAY_VERSION,
      },
      log: ctx.log.child({ part: "admin" }),
    });
    return { stop: () => server.close() };
  },
};

/**
 * In this order: the data plane starts with the registrations loaded and their health polled,
 * so a new generation never answers "no such app" for an app the one before it served.
 */
export const PARTS: readonly Part[] = [certificates, registration, dataPlane, admin];

/** Every part serving the certificate re-reads it; failures are logged, not thrown. */
async function notify(ctx: RunContext): Promise<void> {
  await Promise.all(
    ctx.certificateListeners.map((reload) =>
      reload().catch((error: unknown) =>
        ctx.log.error({ err: error }, "certificate reload failed"),
      ),
    ),
  );
}

export async function runCommand(
  file: string,
  parts: readonly Part[] = PARTS,
  readyFile?: string,
): Promise<number> {
  const listenFds = inheritedListeners();
  const { config, noEffect } = loadConfigFileNoting(file);
  const recentErrors = new RecentErrors();
  const log = createLogger(config.log_level, process.stderr, recentErrors);
  log.info({ config: toRedactedObject(config) }, `config ${file} loaded`);
  // Once, here: proxy workers load the file again but do not repeat this.
  for (const key of noEffect) log.warn({ key: key.path }, noEffectMessage(key));
  for (const risk of configRisks(config))
    log.warn({ key: risk.path }, `${risk.path} ${risk.message}`);
  let adminAuth: AdminAuth | undefined;
  try {
    if (config.core.admin.enabled) adminAuth = await resolveAdminAuth(config.core.admin);
  } catch (error) {
    log.error({ err: error }, "start-up failed");
    return 1;
  }
  let stop: (reason: string, code: number) => void = () => {};
  const stopped = new Promise<{ reason: string; code: number }>((resolve) => {
    stop = (reason, code) => resolve({ reason, code });
    process.once("SIGTERM", () => resolve({ reason: "SIGTERM", code: 0 }));
    process.once("SIGINT", () => resolve({ reason: "SIGINT", code: 0 }));
  });
  const ctx: RunContext = {
    config,
    configFile: file,
    readyFile,
    listenFds,
    log,
    directory: new MemoryDirectory(),
    stats: new ProxyStats(),
    draining: new DrainingFlag(),
    certificateListeners: [],
    recentErrors,
    stop,
    adminAuth,
    admin: {},
  };
  const onHup = () => {
    log.info("SIGHUP: reloading the certificate");
    void notify(ctx);
  };
  process.on("SIGHUP", onHup);
  const running: { name: string; stop(): Promise<void> }[] = [];
  const stopAll = async () => {
    clearInterval(keepAlive);
    process.off("SIGHUP", onHup);
    for (const part of running.reverse()) {
      await part
        .stop()
        .catch((error: unknown) => log.error({ err: error }, `stopping ${part.name} failed`));
    }
  };
  // The gateway lives until a signal, also while a part waits on unref'd timers (the first
  // certificate, say); without this Node would exit with nothing left to do.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    for (const part of parts) {
      if (!part.enabled(config)) {
        log.info(`${part.name}: disabled in the config`);
        continue;
      }
      log.info(`starting ${part.name}`);
      running.push({ name: part.name, ...(await part.start(ctx)) });
      log.info(`started ${part.name}`);
    }
    // The deploy's restart step waits for this (host/files.ts): the new generation serves.
    if (readyFile !== undefined) await writeFileAtomic(readyFile, `${process.pid}\n`, 0o644);
  } catch (error) {
    log.error({ err: error }, "start-up failed");
    await stopAll();
    return 1;
  }
  const { reason, code } = await stopped;
  log.info(`${reason}: stopping`);
  await stopAll();
  log.info("stopped");
  return code;
}
