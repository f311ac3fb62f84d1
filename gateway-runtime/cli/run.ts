import { type GatewayConfig, loadConfigFile } from "../config/index.js";

export const runHelp = `Usage: gateway run --config FILE

Starts the gateway with the config in FILE (.toml, .json, .yaml).
Stops cleanly on SIGTERM or SIGINT.`;

/** A part of the gateway the run command starts; each part arrives with its own issue. */
export interface Part {
  readonly name: string;
  start(config: GatewayConfig): Promise<{ stop(): Promise<void> }>;
}

/** Parts not yet built into this runtime, named so `run` can say what is missing. */
const MISSING = [
  "TLS proxy (data plane)",
  "registration RPC and WireGuard",
  "certificate manager (ACME)",
  "admin API and metrics",
];

export async function runCommand(file: string, parts: readonly Part[] = []): Promise<number> {
  const config = loadConfigFile(file);
  log(`config ${file} is valid (base domain ${config.core.proxy.base_domain})`);
  for (const name of MISSING) log(`not in this build yet: ${name}`);
  if (parts.length === 0) {
    log("nothing to start: no gateway part is built into this runtime yet");
    return 1;
  }
  const running = [];
  for (const part of parts) {
    running.push(await part.start(config));
    log(`started ${part.name}`);
  }
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  for (const part of running.reverse()) await part.stop();
  return 0;
}

function log(message: string): void {
  process.stderr.write(`gateway: ${message}\n`);
}
