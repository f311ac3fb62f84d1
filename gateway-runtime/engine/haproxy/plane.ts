/**
 * The data plane with the HAProxy engine: HAProxy on the public ports (the handed-over
 * descriptors go to it), and the Node data plane as its slow path on `FILES.slowPath`, for what
 * HAProxy cannot decide (unknown names, the gateway's own names, the first connection to a
 * custom domain). Each custom domain the slow path resolves goes into HAProxy's map for as
 * long as its TXT answer holds, so later connections take the fast path.
 *
 * The slow path starts first: HAProxy sends it connections from its first second.
 *
 * At a hand-over HAProxy keeps serving for the next generation, which adopts it (or retires
 * it, on the Node engine; a watcher stops it when none comes: watch.ts); the slow
 * path, which lives in this process, is closed with it, as this process must exit for the next
 * one to start. Its open connections (rare, and re-routed to the fast path once their custom
 * domain is in the map) are cut then.
 */
import { join } from "node:path";
import type { GatewayConfig } from "../../config/index.js";
import { ensureDir } from "../../files/atomic.js";
import type { Logger } from "../../log/index.js";
import {
  type DataPlane,
  type DrainingFlag,
  type ProxySnapshot,
  startDataPlane,
} from "../../proxy/index.js";
import {
  type HaproxyEngine,
  type HaproxyEngineDeps,
  engineDir,
  startHaproxyEngine,
} from "./engine.js";
import { FILES } from "./layout.js";
import { mergeEngineSnapshots } from "./stats.js";
import { spawnHandOverWatch } from "./watch.js";

export interface HaproxyPlane {
  readonly engine: HaproxyEngine;
  /** The Node data plane behind HAProxy (FILES.slowPath). */
  readonly slowPath: DataPlane;
  /** HAProxy's counters and the slow path's, summed; the slow path's alone when HAProxy is silent. */
  snapshot(): Promise<{ snapshot: ProxySnapshot; answered: number }>;
  reloadCertificate(): Promise<void>;
  /** Stops HAProxy and the slow path. */
  stop(): Promise<void>;
  /** A hand-over: HAProxy is left to the next generation; the slow path closes. */
  handOver(): Promise<void>;
}

export async function startHaproxyPlane(
  config: GatewayConfig,
  deps: HaproxyEngineDeps & {
    readonly draining?: DrainingFlag;
    readonly log: Logger;
    /** The unit's ready file: the cue that a next generation serves (watch.ts). */
    readonly readyFile?: string | undefined;
  },
  fds: { readonly tls?: number | undefined; readonly http?: number | undefined } = {},
): Promise<HaproxyPlane> {
  const dir = engineDir(config);
  await ensureDir(dir);
  let engine: HaproxyEngine | undefined;
  const slow = await startDataPlane(
    config,
    {
      directory: deps.directory,
      log: deps.log,
      ...(deps.draining ? { draining: deps.draining } : {}),
      onCustomDomain: (name, answer) => engine?.installCustomDomain({ name, ...answer }),
    },
    { slowPathSocket: join(dir, FILES.slowPath) },
  );
  try {
    engine = await startHaproxyEngine(config, deps, { dir, fds });
  } catch (error) {
    await slow.stop();
    throw error;
  }
  const started = engine;
  const log = deps.log.child({ part: "haproxy" });
  return {
    engine: started,
    slowPath: slow,
    async snapshot() {
      const own = await slow.snapshot();
      try {
        return { snapshot: mergeEngineSnapshots(await started.snapshot(), own), answered: 1 };
      } catch (error) {
        log.warn({ err: error }, "haproxy's counters are not available; showing the slow path's");
        return { snapshot: own, answered: 0 };
      }
    },
    async reloadCertificate() {
      await Promise.all([started.reloadCertificate(), slow.terminator.reload()]);
    },
    async stop() {
      await started.stop();
      await slow.stop();
    },
    async handOver() {
      await started.drain();
      // A stop looks like a hand-over from here: the watcher stops HAProxy if no generation
      // follows.
      if (deps.readyFile)
        spawnHandOverWatch({ dir, readyFile: deps.readyFile, previousPid: process.pid });
      await slow.stop();
    },
  };
}
