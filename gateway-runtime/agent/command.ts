/** `gateway agent`: reads the files the options name, starts the agent, stops on a signal. */
import { readFile } from "node:fs/promises";
import { GatewayError } from "../errors.js";
import { createLogger, type Logger } from "../log/index.js";
import { CvmAgent } from "./agent.js";
import { DEFAULT_CHECKER } from "./checker.js";
import { loadOrCreateKey } from "./key.js";
import type { AgentOptions } from "./options.js";
import { AgentTunnel } from "./tunnel.js";

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new GatewayError(
      "E_AGENT_CONFIG",
      `cannot read ${what} ${file}: ${(err as Error).message}`,
    );
  }
}

/**
 * Runs until SIGTERM or SIGINT; resolves with the exit status (1 when it cannot start: a file
 * that cannot be read, a bad key file). Registration failures are retried, never fatal.
 */
export async function agentCommand(options: AgentOptions): Promise<number> {
  const log = createLogger(options.logLevel).child({ part: "agent" });
  try {
    return await runAgent(options, log);
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    log.error({ code: err.code }, err.message);
    return 1;
  }
}

async function runAgent(options: AgentOptions, log: Logger): Promise<number> {
  const [cert, key, ca] = await Promise.all([
    readPem(options.certFile, "--cert"),
    readPem(options.keyFile, "--key"),
    options.caFile === undefined ? undefined : readPem(options.caFile, "--ca"),
  ]);
  const wgKey = await loadOrCreateKey(options.wgKeyFile);
  log.info(
    { file: options.wgKeyFile, publicKey: wgKey.publicKey },
    wgKey.created ? "generated a WireGuard key" : "using the WireGuard key on disk",
  );
  const tunnel = new AgentTunnel({
    interface: options.interface,
    configPath: options.wgConfigFile,
    privateKey: wgKey.privateKey,
    listenPort: options.listenPort,
    implementation: options.implementation,
    wireguardGo: options.wireguardGo,
    commandTimeoutMs: 10_000,
    log,
  });
  const agent = new CvmAgent({
    client: {
      gateway: options.gateway,
      cert,
      key,
      ca,
      servername: options.servername,
      timeoutMs: options.requestTimeoutMs,
    },
    publicKey: wgKey.publicKey,
    tunnel,
    checker: {
      ...DEFAULT_CHECKER,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      handshakeWaitMs: options.handshakeWaitMs,
      refreshMs: options.refreshIntervalMs,
    },
    checkIntervalMs: options.checkIntervalMs,
    log,
  });
  log.info(
    {
      gateway: options.gateway,
      interface: options.interface,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
    },
    "agent starting",
  );
  agent.start();
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  log.info(`${signal}: stopping`);
  await agent.stop();
  log.info("stopped");
  return 0;
}
