/**
 * Bench-only entry: the real data plane (`startDataPlane`) with one static instance in a
 * `MemoryDirectory`, since instances otherwise come only from the registry. Bundled by
 * `bench/lib/build.ts` the way `scripts/build.mjs` bundles the gateway, and run with plain
 * `node`. Prints `{"port": N}` on stdout once listening; SIGTERM or SIGINT stops it cleanly (so
 * `--cpu-prof` gets to write its profile); with `--memory-file F`, SIGUSR2 writes
 * `process.memoryUsage()` to F.
 *
 *   node bench/.build/gateway-bench.mjs --cert F --key F --app HEX [--backend 127.0.0.1]
 *     [--instances N] [--connect-attempt-delay DURATION] [--workers N]
 *
 * `--instances N` registers N healthy instances of the app, all at the backend's address, so
 * each connection races min(N, `connect_top_n`) connects (3 by default, as in the seed);
 * `--connect-attempt-delay` sets `core.proxy.connect_attempt_delay` (e.g. "250ms": in turn).
 * `--workers N` (N > 1) serves through `core.proxy.workers` = N: this process becomes the
 * primary (`ProxyWorkers`) and forks N copies of this bundle as `proxy-worker`s, which share a
 * port chosen here; the primary feeds them the instances and the ticket keys, as in `gateway
 * run`. All of them inherit the CPU pinning and are one process group for the CPU figures.
 * Handed listening sockets (LISTEN_FDS, as the socket units or `lab/shims/socket-holder.mjs`
 * pass them) are served as `gateway run` serves them: through workers even when there is one,
 * so SIGTERM is the old half of a hand-over (the workers drain, this process exits at once);
 * `--ready-file F` is then written with this process's pid once it serves, as `gateway run`
 * does (scenario (u), `bench/handover/`).
 * `--engine haproxy --state-dir D` serves through the HAProxy engine as `gateway run` does with
 * `core.proxy.engine = "haproxy"` (`startHaproxyPlane`: HAProxy on the port, configured under
 * `D/haproxy`, the Node data plane as its slow path); the ready line then also names HAProxy's
 * master, `{"port": N, "haproxy": PID}`, whose process group (it and its workers) the bench
 * counts with this process.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ProxyWorkers, proxyWorkerCommand } from "../gateway-runtime/workers/index.js";
import { type GatewayConfig, parseGatewayConfig } from "../gateway-runtime/config/index.js";
import { writeFileAtomic } from "../gateway-runtime/files/atomic.js";
import { handedOver, inheritedListeners, type ListenFds } from "../gateway-runtime/listen/index.js";
import { createLogger, type Logger } from "../gateway-runtime/log/index.js";
import { startHaproxyPlane } from "../gateway-runtime/engine/haproxy/plane.js";
import { startDataPlane } from "../gateway-runtime/proxy/index.js";
import { MemoryDirectory } from "../gateway-runtime/registry/index.js";
import { minimalConfig, withKey } from "../testkit/config.js";
import { reportMemoryOnSignal, stopSignal } from "./lib/entry.js";
import { freePort } from "./lib/net.js";

/** Well inside `healthy_handshake_age` (5 min by default). */
const HANDSHAKE_REFRESH_MS = 30_000;

async function main(): Promise<void> {
  // First: it consumes the variables, which no later child must take for its own.
  const listenFds = inheritedListeners();
  const { values } = parseArgs({
    options: {
      cert: { type: "string" },
      key: { type: "string" },
      app: { type: "string" },
      backend: { type: "string", default: "127.0.0.1" },
      "log-level": { type: "string", default: "info" },
      instances: { type: "string", default: "1" },
      "connect-attempt-delay": { type: "string" },
      workers: { type: "string", default: "1" },
      "memory-file": { type: "string" },
      "ready-file": { type: "string" },
      engine: { type: "string", default: "node" },
      "state-dir": { type: "string" },
    },
  });
  const { cert, key, app } = values;
  if (!cert || !key || !app) throw new Error("--cert, --key and --app are required");

  let raw = minimalConfig();
  for (const [path, value] of [
    ["log_level", values["log-level"]],
    ["core.proxy.cert_chain", cert],
    ["core.proxy.cert_key", key],
    ["core.proxy.listen_addr", "127.0.0.1"],
    ["core.proxy.http_redirect", false],
  ] as const) {
    raw = withKey(raw, path, value);
  }
  const engine = values.engine;
  const stateDir = values["state-dir"];
  if (engine !== "node" && engine !== "haproxy") throw new Error("--engine is node or haproxy");
  if (engine === "haproxy") {
    if (stateDir === undefined) throw new Error("--engine haproxy needs --state-dir");
    raw = withKey(raw, "core.proxy.engine", "haproxy");
    raw = withKey(raw, "core.state_path", join(stateDir, "state.json"));
    raw = withKey(raw, "core.proxy.listen_port", await freePort());
  }
  const attemptDelay = values["connect-attempt-delay"];
  if (attemptDelay !== undefined)
    raw = withKey(raw, "core.proxy.connect_attempt_delay", attemptDelay);
  const config = parseGatewayConfig(raw, "gateway-bench");
  const log = createLogger(config.log_level);

  const count = Number(values.instances);
  if (!Number.isInteger(count) || count < 1 || count > 99) {
    throw new Error("--instances must be an integer in 1..99");
  }
  const directory = new MemoryDirectory();
  const ids = Array.from({ length: count }, (_, i) => `${app}${String(i + 1).padStart(2, "0")}`);
  for (const id of ids) {
    directory.upsert({ id, appId: app, ip: values.backend, lastHandshakeMs: Date.now() });
  }
  const refresh = setInterval(() => {
    for (const id of ids) directory.setHandshake(id, Date.now());
  }, HANDSHAKE_REFRESH_MS).unref();

  const workers = Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    throw new Error("--workers must be an integer in 1..64");
  }
  const here = workers === 1 && !handedOver(listenFds);
  if (engine === "haproxy" && !here) throw new Error("--engine haproxy takes no workers");
  const serving =
    engine === "haproxy"
      ? await serveHaproxy(config, directory, log)
      : here
        ? await serveHere(config, directory, log)
        : await serveInWorkers(
            raw,
            config,
            workers,
            directory,
            log,
            listenFds,
            values["ready-file"],
          );
  // With workers the V8 heaps are theirs, not this process's: no heap split for (g).
  if (here) reportMemoryOnSignal(values["memory-file"]);
  const ready = {
    port: serving.port ?? null,
    ...(serving.haproxy ? { haproxy: serving.haproxy } : {}),
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  const readyFile = values["ready-file"];
  if (readyFile !== undefined) await writeFileAtomic(readyFile, `${process.pid}\n`, 0o644);

  const signal = await stopSignal();
  log.info(`${signal}: stopping`);
  clearInterval(refresh);
  await serving.stop();
}

interface Serving {
  /** Unknown on handed-over sockets: whoever bound them knows it. */
  readonly port: number | undefined;
  /** The HAProxy engine's master pid. */
  readonly haproxy?: number;
  stop(): Promise<void>;
}

/** The HAProxy engine, one thread (`core.proxy.workers` = 1), on `listen_port`. */
async function serveHaproxy(
  config: GatewayConfig,
  directory: MemoryDirectory,
  log: Logger,
): Promise<Serving> {
  const plane = await startHaproxyPlane(config, { directory, log });
  return {
    port: config.core.proxy.listen_port,
    haproxy: plane.engine.process.pid,
    stop: () => plane.stop(),
  };
}

async function serveHere(
  config: GatewayConfig,
  directory: MemoryDirectory,
  log: Logger,
): Promise<Serving> {
  const plane = await startDataPlane(config, { directory, log }, { https: 0 });
  return { port: plane.proxy.address().port, stop: () => plane.stop() };
}

async function serveInWorkers(
  raw: Record<string, unknown>,
  config: GatewayConfig,
  count: number,
  directory: MemoryDirectory,
  log: Logger,
  listenFds: ListenFds,
  readyFile: string | undefined,
): Promise<Serving> {
  const port = handedOver(listenFds) ? undefined : await freePort();
  const dir = mkdtempSync(join(tmpdir(), "gw-bench-workers-"));
  const configFile = join(dir, "gateway.json");
  let settings = withKey(raw, "core.proxy.workers", count);
  if (port !== undefined) settings = withKey(settings, "core.proxy.listen_port", port);
  writeFileSync(configFile, JSON.stringify(settings), { mode: 0o600 });
  const workers = await ProxyWorkers.start({
    count,
    configFile,
    directory,
    log,
    exec: process.argv[1] as string,
    listenFds,
    readyFile,
    drainTimeoutMs: config.core.proxy.drain_timeout,
  });
  return {
    port,
    async stop() {
      await workers.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const run: () => Promise<unknown> =
  process.argv[2] === "proxy-worker"
    ? async () => {
        // As ProxyWorkers starts it: proxy-worker --config FILE [--ready-file FILE]
        const readyFile = process.argv[5] === "--ready-file" ? process.argv[6] : undefined;
        process.exit(await proxyWorkerCommand(process.argv[4] as string, readyFile));
      }
    : main;

run().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `gateway-bench: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    process.exit(1);
  },
);
