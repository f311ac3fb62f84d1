import { type GatewayConfig, loadConfigFile, toRedactedObject } from "../config/index.js";
import { createLogger, type Logger } from "../log/index.js";
import { ProxyStats, startDataPlane } from "../proxy/index.js";
import { startRegistration } from "../registration/index.js";
import { MemoryDirectory } from "../registry/index.js";

export const runHelp = `Usage: gateway run --config FILE

Starts the gateway with the config in FILE (.toml, .json, .yaml).
SIGHUP reloads the TLS certificate; SIGTERM or SIGINT stops cleanly.`;

/** What every part of a running gateway shares. */
export interface RunContext {
  readonly config: GatewayConfig;
  readonly log: Logger;
  readonly directory: MemoryDirectory;
  readonly stats: ProxyStats;
}

/** A part of the gateway; parts start in order and stop in reverse. */
export interface Part {
  readonly name: string;
  start(ctx: RunContext): Promise<{ stop(): Promise<void> }>;
}

const dataPlane: Part = {
  name: "TLS proxy (data plane)",
  async start(ctx) {
    const plane = await startDataPlane(ctx.config, ctx);
    const reload = () => {
      void plane.terminator.reload();
    };
    process.on("SIGHUP", reload);
    return {
      async stop() {
        process.off("SIGHUP", reload);
        await plane.stop();
      },
    };
  },
};

const registration: Part = {
  name: "registration RPC and WireGuard",
  async start(ctx) {
    const started = await startRegistration(ctx.config, ctx);
    const reload = () => {
      started.rpc
        .reloadCertificate()
        .catch((error: unknown) => ctx.log.error({ err: error }, "RPC certificate reload failed"));
    };
    process.on("SIGHUP", reload);
    return {
      async stop() {
        process.off("SIGHUP", reload);
        await started.stop();
      },
    };
  },
};

export const PARTS: readonly Part[] = [dataPlane, registration];

/** Parts not yet built into this runtime, named so `run` says what is missing. */
const MISSING = ["certificate manager (ACME)", "admin API and metrics"];

export async function runCommand(file: string, parts: readonly Part[] = PARTS): Promise<number> {
  const config = loadConfigFile(file);
  const log = createLogger(config.log_level);
  log.info({ config: toRedactedObject(config) }, `config ${file} loaded`);
  for (const name of MISSING) log.warn(`not in this build yet: ${name}`);
  const ctx: RunContext = {
    config,
    log,
    directory: new MemoryDirectory(),
    stats: new ProxyStats(),
  };
  const running: { name: string; stop(): Promise<void> }[] = [];
  const stopAll = async () => {
    for (const part of running.reverse()) {
      await part
        .stop()
        .catch((error: unknown) => log.error({ err: error }, `stopping ${part.name} failed`));
    }
  };
  try {
    for (const part of parts) {
      running.push({ name: part.name, ...(await part.start(ctx)) });
      log.info(`started ${part.name}`);
    }
  } catch (error) {
    log.error({ err: error }, "start-up failed");
    await stopAll();
    return 1;
  }
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  log.info(`${signal}: stopping`);
  await stopAll();
  log.info("stopped");
  return 0;
}
