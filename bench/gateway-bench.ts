/**
 * Bench-only entry: the real data plane (`startDataPlane`) with one static instance in a
 * `MemoryDirectory`, since instances otherwise come only from the registry. Bundled by
 * `bench/lib/build.ts` the way `scripts/build.mjs` bundles the gateway, and run with plain
 * `node`. Prints `{"port": N}` on stdout once listening; SIGTERM or SIGINT stops it cleanly (so
 * `--cpu-prof` gets to write its profile); with `--memory-file F`, SIGUSR2 writes
 * `process.memoryUsage()` to F.
 *
 *   node bench/.build/gateway-bench.mjs --cert F --key F --app HEX [--backend 127.0.0.1]
 *     [--instances N] [--connect-attempt-delay DURATION]
 *
 * `--instances N` registers N healthy instances of the app, all at the backend's address, so
 * each connection races min(N, `connect_top_n`) connects (3 by default, as in the seed);
 * `--connect-attempt-delay` sets `core.proxy.connect_attempt_delay` (e.g. "250ms": in turn).
 */
import { parseArgs } from "node:util";
import { parseGatewayConfig } from "../gateway-runtime/config/index.js";
import { createLogger } from "../gateway-runtime/log/index.js";
import { startDataPlane } from "../gateway-runtime/proxy/index.js";
import { MemoryDirectory } from "../gateway-runtime/registry/index.js";
import { minimalConfig, withKey } from "../tests/helpers/config.js";
import { reportMemoryOnSignal, stopSignal } from "./lib/entry.js";

/** Well inside `healthy_handshake_age` (5 min by default). */
const HANDSHAKE_REFRESH_MS = 30_000;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cert: { type: "string" },
      key: { type: "string" },
      app: { type: "string" },
      backend: { type: "string", default: "127.0.0.1" },
      "log-level": { type: "string", default: "info" },
      instances: { type: "string", default: "1" },
      "connect-attempt-delay": { type: "string" },
      "memory-file": { type: "string" },
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

  const plane = await startDataPlane(config, { directory, log }, { https: 0 });
  reportMemoryOnSignal(values["memory-file"]);
  process.stdout.write(`${JSON.stringify({ port: plane.proxy.address().port })}\n`);

  const signal = await stopSignal();
  log.info(`${signal}: stopping`);
  clearInterval(refresh);
  await plane.stop();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `gateway-bench: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    process.exit(1);
  },
);
