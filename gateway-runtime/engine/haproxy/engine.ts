/**
 * The HAProxy engine (`core.proxy.engine = "haproxy"`): HAProxy moves the bytes, the runtime
 * decides. Renders the configuration (`render.ts`), starts or adopts HAProxy (`process.ts`),
 * keeps its servers and maps in step with the instance directory (`reconcile.ts`) and swaps
 * its certificate without a reload. The Node data plane keeps serving what HAProxy hands it
 * on the slow-path socket (`FILES.slowPath`); the caller starts it.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { GatewayConfig } from "../../config/index.js";
import { ensureDir, writeFileAtomic } from "../../files/atomic.js";
import type { Logger } from "../../log/index.js";
import type { ProxySnapshot } from "../../proxy/index.js";
import type { Instance, InstanceDirectory } from "../../registry/index.js";
import { HaproxyApi } from "./api.js";
import { FILES } from "./layout.js";
import { Reconciler } from "./reconcile.js";
import { appProxyV2, DEFAULT_SLOTS, digestOf, renderConfig, slotsOf } from "./render.js";
import { HaproxyProcess } from "./process.js";
import { haproxySnapshot } from "./stats.js";

export interface HaproxyEngineDeps {
  /** The registration's directory: read, and followed through `onChange`. */
  readonly directory: InstanceDirectory & {
    all(): Instance[];
    onChange(listener: () => void): () => void;
  };
  readonly log: Logger;
}

export interface HaproxyEngineOptions {
  /** Default: `<dirname(core.state_path)>/haproxy`. */
  readonly dir?: string;
  /** Backend slots declared at first (default 64); more come with a reload when needed. */
  readonly slots?: number;
  /** Ports to bind instead of the config's (tests). */
  readonly ports?: { readonly tls?: number; readonly http?: number };
  /** Handed-over listening descriptors of this process (systemd's `tls` and `http`). */
  readonly fds?: { readonly tls?: number | undefined; readonly http?: number | undefined };
  readonly binary?: string;
  readonly tickMs?: number;
}

export interface HaproxyEngine {
  readonly dir: string;
  readonly process: HaproxyProcess;
  readonly api: HaproxyApi;
  readonly reconciler: Reconciler;
  /** Counters from HAProxy's `show stat`, in the Node data plane's shape. */
  snapshot(): Promise<ProxySnapshot>;
  /**
   * A custom domain the slow path resolved (its TXT answer and how long it holds): later
   * connections to it take HAProxy's fast path until it expires.
   */
  installCustomDomain(address: CustomDomainAnswer): void;
  /** Reads `cert_chain` and `cert_key` again and swaps them in (`set ssl cert`), no reload. */
  reloadCertificate(): Promise<void>;
  /** Stops HAProxy: its connections end. */
  stop(): Promise<void>;
  /** A hand-over: HAProxy keeps serving for the next generation, which adopts it. */
  drain(timeoutMs?: number): Promise<number>;
}

/** What `installCustomDomain` takes (the slow path's resolver answers in this shape). */
export interface CustomDomainAnswer {
  /** Lowercase, no trailing dot. */
  readonly name: string;
  readonly appId: string;
  readonly port: number;
  /** How long the answer holds from now. */
  readonly ttlMs: number;
}

/** The engine's directory for a config. */
export function engineDir(config: GatewayConfig): string {
  return join(dirname(config.core.state_path), "haproxy");
}

async function certificatePem(config: GatewayConfig): Promise<string> {
  const p = config.core.proxy;
  const chain = await readFile(p.cert_chain, "utf8");
  const key = await readFile(p.cert_key, "utf8");
  return `${chain.trimEnd()}\n${key.trimEnd()}\n`;
}

export async function startHaproxyEngine(
  config: GatewayConfig,
  deps: HaproxyEngineDeps,
  options: HaproxyEngineOptions = {},
): Promise<HaproxyEngine> {
  const proxy = config.core.proxy;
  const dir = options.dir ?? engineDir(config);
  const log = deps.log.child({ part: "haproxy" });
  await ensureDir(dir);
  const configFile = join(dir, FILES.config);
  const certFile = join(dir, FILES.certificate);
  await writeFileAtomic(certFile, await certificatePem(config), 0o600);
  // HAProxy sees the handed-over listeners as 3 and 4, in this order.
  const passFds = [options.fds?.tls, options.fds?.http].filter((fd) => fd !== undefined);
  const fds = {
    tls: options.fds?.tls === undefined ? undefined : 3,
    http: options.fds?.http === undefined ? undefined : options.fds?.tls === undefined ? 3 : 4,
  };
  const running = existsSync(configFile) ? await readFile(configFile, "utf8") : "";
  const render = (servers: Parameters<typeof renderConfig>[0]["servers"], slots: number) =>
    renderConfig({
      proxy,
      dir,
      slots,
      ...(servers ? { servers } : {}),
      fds,
      ...(options.ports ? { ports: options.ports } : {}),
    });
  const poolSize = Math.max(options.slots ?? DEFAULT_SLOTS, slotsOf(running));
  const api = new HaproxyApi(join(dir, FILES.api));
  let proc: HaproxyProcess | undefined;
  const reconciler = new Reconciler({
    api,
    dir,
    log,
    instances: () => deps.directory.all(),
    healthyAgeMs: proxy.healthy_handshake_age,
    proxyV2: (appId) => appProxyV2(proxy, appId),
    render,
    reload: async () => {
      if (!proc) throw new Error("haproxy is not running");
      await proc.reload();
    },
    poolSize,
    ...(options.tickMs !== undefined ? { tickMs: options.tickMs } : {}),
  });
  // The files HAProxy starts from: the directory's state now (a fresh start serves it at once).
  await reconciler.writeFiles(reconciler.desired());
  proc = await HaproxyProcess.startOrAdopt({
    dir,
    log,
    passFds,
    ...(options.binary ? { binary: options.binary } : {}),
    onRestart: () => void reconciler.resync().then(() => reconciler.schedule()),
  });
  if (proc.adopted) {
    // The file on disk was just rewritten; the running one's structure is the old file's.
    const now = await readFile(configFile, "utf8");
    if (digestOf(running) !== digestOf(now)) {
      log.info("haproxy: adopted with another configuration structure; reloading");
      await proc.reload();
    }
    await api.setCertificate(certFile, await certificatePem(config));
  }
  await reconciler.resync();
  await reconciler.settle();
  reconciler.start();
  const unsubscribe = deps.directory.onChange(() => reconciler.schedule());
  log.info({ dir, pid: proc.pid, adopted: proc.adopted }, "haproxy engine serving");
  const started = proc;
  const close = () => {
    unsubscribe();
    reconciler.stop();
  };
  return {
    dir,
    process: started,
    api,
    reconciler,
    // No certificate: the slow path's snapshot carries the one served (the same file).
    snapshot: () =>
      haproxySnapshot(
        join(dir, FILES.api),
        new Map([...reconciler.desired().slots].map(([app, slot]) => [slot, app] as const)),
      ),
    installCustomDomain({ name, appId, port, ttlMs }) {
      reconciler.setCustomDomain(name, `${appId}:${port}`, ttlMs);
    },
    async reloadCertificate() {
      const pem = await certificatePem(config);
      await writeFileAtomic(certFile, pem, 0o600);
      await api.setCertificate(certFile, pem);
      log.info("haproxy: certificate replaced");
    },
    async stop() {
      close();
      await started.stop();
    },
    async drain() {
      close();
      started.release();
      return 0;
    },
  };
}
