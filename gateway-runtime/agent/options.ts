/**
 * `gateway agent` options: parsed and checked here, without touching a file, so usage errors
 * are found before anything starts.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseDuration } from "../config/duration.js";
import type { LogLevel } from "../log/index.js";
import { DEFAULT_CHECKER } from "./checker.js";
import { IFNAME, type WgImplementation } from "./link.js";

export const agentHelp = `Usage: gateway agent --gateway URL --cert FILE --key FILE [options]

Runs on a CVM (or any VM): makes a WireGuard key (kept in DATA_DIR/wg.key, mode 0600),
registers it with the gateway's RPC over mutual TLS, configures the WireGuard interface from
the answer and keeps the tunnel up: a tunnel without a handshake for --handshake-timeout gets a
forced handshake, and a re-registration when that stays unanswered for --handshake-wait.
SIGTERM or SIGINT takes the tunnel down (and stops the wireguard-go it runs) and exits.

Options:
  --gateway URL             the gateway RPC, https://host:port (required)
  --cert FILE               client certificate chain, PEM (RA-TLS; required)
  --key FILE                its private key, PEM (required)
  --ca FILE                 CA bundle the gateway's certificate must chain to (default: system roots)
  --servername NAME         TLS server name to send and verify (default: the URL's host)
  --interface NAME          WireGuard interface (default dstack-wg0)
  --data-dir DIR            where the key and the rendered config live (default /var/lib/gateway-agent)
  --listen-port PORT        our WireGuard UDP port (default: chosen by WireGuard)
  --handshake-timeout DUR   handshake age that makes the tunnel stale (default 180s)
  --handshake-wait DUR      how long a forced handshake may stay unanswered (default 15s)
  --check-interval DUR      how often the tunnel is checked (default 10s)
  --refresh-interval DUR    register again this often to learn the region's hosts; 0s: never (default 10m)
  --request-timeout DUR     bound on one registration request (default 10s)
  --implementation MODE     auto (kernel, else wireguard-go), kernel or userspace (default auto)
  --wireguard-go FILE       the wireguard-go binary (default wireguard-go)
  --log-level LEVEL         trace, debug, info, warn or error (default info)`;

export interface AgentOptions {
  readonly gateway: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string | undefined;
  readonly servername: string | undefined;
  readonly interface: string;
  readonly wgKeyFile: string;
  readonly wgConfigFile: string;
  readonly listenPort: number | undefined;
  readonly handshakeTimeoutMs: number;
  readonly handshakeWaitMs: number;
  readonly checkIntervalMs: number;
  /** 0: never refresh. */
  readonly refreshIntervalMs: number;
  readonly requestTimeoutMs: number;
  readonly implementation: WgImplementation;
  readonly wireguardGo: string;
  readonly logLevel: LogLevel;
}

export type ParsedAgentArgs =
  | { readonly kind: "help" }
  | { readonly kind: "usage"; readonly problem: string }
  | { readonly kind: "run"; readonly options: AgentOptions };

const LEVELS = ["trace", "debug", "info", "warn", "error"] as const;
const IMPLEMENTATIONS = ["auto", "kernel", "userspace"] as const;

/** Parses `argv` (after `agent`). Unknown options throw parseArgs' ERR_PARSE_ARGS_* errors. */
export function parseAgentArgs(argv: readonly string[]): ParsedAgentArgs {
  const { values: v } = parseArgs({
    args: [...argv],
    options: {
      gateway: { type: "string" },
      cert: { type: "string" },
      key: { type: "string" },
      ca: { type: "string" },
      servername: { type: "string" },
      interface: { type: "string", default: "dstack-wg0" },
      "data-dir": { type: "string", default: "/var/lib/gateway-agent" },
      "listen-port": { type: "string" },
      "handshake-timeout": { type: "string", default: "180s" },
      "handshake-wait": { type: "string", default: "15s" },
      "check-interval": { type: "string", default: "10s" },
      "refresh-interval": { type: "string", default: "10m" },
      "request-timeout": { type: "string", default: "10s" },
      implementation: { type: "string", default: "auto" },
      "wireguard-go": { type: "string", default: "wireguard-go" },
      "log-level": { type: "string", default: "info" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) return { kind: "help" };
  const usage = (problem: string): ParsedAgentArgs => ({ kind: "usage", problem });
  for (const name of ["gateway", "cert", "key"] as const) {
    if (!v[name]) return usage(`--${name} is required`);
  }
  const gateway = v.gateway as string;
  let url: URL;
  try {
    url = new URL(gateway);
  } catch {
    return usage(`--gateway ${gateway} is not a URL`);
  }
  if (url.protocol !== "https:") return usage(`--gateway must be an https:// URL, got ${gateway}`);
  if (url.search || url.hash) return usage("--gateway takes no query or fragment");
  const iface = v.interface as string;
  if (!IFNAME.test(iface)) return usage(`--interface ${iface} is not an interface name`);
  const durations: Record<string, number> = {};
  for (const name of ["handshake-timeout", "handshake-wait", "check-interval", "request-timeout"]) {
    const text = v[name as keyof typeof v] as string;
    const ms = parseDuration(text);
    if (ms === undefined || ms <= 0)
      return usage(`--${name}: expected a duration like "10s", got "${text}"`);
    durations[name] = ms;
  }
  const refreshText = v["refresh-interval"] as string;
  const refreshIntervalMs = parseDuration(refreshText);
  if (refreshIntervalMs === undefined || refreshIntervalMs < 0)
    return usage(
      `--refresh-interval: expected a duration like "10m" or "0s", got "${refreshText}"`,
    );
  let listenPort: number | undefined;
  if (v["listen-port"] !== undefined) {
    listenPort = Number(v["listen-port"]);
    if (!/^\d+$/.test(v["listen-port"]) || listenPort < 1 || listenPort > 65535) {
      return usage(`--listen-port: expected 1-65535, got "${v["listen-port"]}"`);
    }
  }
  const implementation = v.implementation as WgImplementation;
  if (!IMPLEMENTATIONS.includes(implementation)) {
    return usage(`--implementation: expected auto, kernel or userspace, got "${implementation}"`);
  }
  const logLevel = v["log-level"] as LogLevel;
  if (!LEVELS.includes(logLevel)) return usage(`--log-level: unknown level "${logLevel}"`);
  const dataDir = v["data-dir"] as string;
  return {
    kind: "run",
    options: {
      gateway,
      certFile: v.cert as string,
      keyFile: v.key as string,
      caFile: v.ca,
      servername: v.servername,
      interface: iface,
      wgKeyFile: join(dataDir, "wg.key"),
      wgConfigFile: join(dataDir, `${iface}.conf`),
      listenPort,
      handshakeTimeoutMs: durations["handshake-timeout"] ?? DEFAULT_CHECKER.handshakeTimeoutMs,
      handshakeWaitMs: durations["handshake-wait"] ?? DEFAULT_CHECKER.handshakeWaitMs,
      checkIntervalMs: durations["check-interval"] ?? 10_000,
      refreshIntervalMs,
      requestTimeoutMs: durations["request-timeout"] ?? 10_000,
      implementation,
      wireguardGo: v["wireguard-go"] as string,
      logLevel,
    },
  };
}
