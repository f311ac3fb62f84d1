import { parseArgs } from "node:util";
import { agentCommand, agentHelp, parseAgentArgs } from "./agent/index.js";
import { adminCommand, adminHelp, HOST_CONFIG } from "./cli/admin.js";
import { checkConfigCommand, checkConfigHelp } from "./cli/check-config.js";
import { parseProbeArgs, probeCommand, probeHelp } from "./cli/probe.js";
import { proxyWorkerCommand } from "./workers/index.js";
import { runCommand, runHelp } from "./cli/run.js";
import { ConfigError, type ConfigFormat } from "./config/index.js";
import { watchHandOver } from "./engine/haproxy/watch.js";
import { createLogger } from "./log/index.js";

const HELP = `Usage: gateway <command> [options]

TLS gateway for confidential VMs: routes <app-id>[-<port>][s|g].<base-domain> by SNI
to CVMs over WireGuard.

Commands:
  check-config FILE      validate a config file (and the files it reads) and print it normalized, secrets redacted
  run --config FILE      start the gateway
  agent --gateway URL    run on a CVM: register with a gateway and keep the WireGuard tunnel up
  admin <call> [JSON]    call this host's admin API (Status, GetInfo, RenewCert, metrics, ...)
  probe                  check a gateway as clients see it: certificate, health, canary routes

Run "gateway <command> --help" for a command's options.`;

const EX_USAGE = 64;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(`${HELP}\n`);
    return command === undefined ? EX_USAGE : 0;
  }
  if (command === "check-config") {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        format: { type: "string", default: "json" },
        "on-host": { type: "boolean", default: false },
        shipped: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) return help(checkConfigHelp, 0);
    const format = values.format as ConfigFormat;
    const shipped = values.shipped;
    if (
      positionals.length !== 1 ||
      !["json", "toml", "yaml"].includes(format) ||
      (values["on-host"] && shipped !== undefined)
    )
      return help(checkConfigHelp, EX_USAGE);
    const files = values["on-host"]
      ? ({ kind: "host" } as const)
      : shipped !== undefined
        ? ({ kind: "shipped", paths: shipped } as const)
        : ({ kind: "none" } as const);
    return checkConfigCommand(positionals[0] as string, format, files);
  }
  if (command === "run") {
    const { values } = parseArgs({
      args: rest,
      options: {
        config: { type: "string", short: "c" },
        "ready-file": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) return help(runHelp, 0);
    if (!values.config) return help(runHelp, EX_USAGE);
    return runCommand(values.config, undefined, values["ready-file"]);
  }
  if (command === "admin") {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } },
    });
    if (values.help) return help(adminHelp, 0);
    const [call, json] = positionals;
    if (call === undefined || positionals.length > 2 || !/^[A-Za-z]+$/.test(call)) {
      return help(adminHelp, EX_USAGE);
    }
    return adminCommand(values.config ?? HOST_CONFIG, call, json);
  }
  if (command === "probe") {
    const values = parseProbeArgs(rest);
    if (values.help) return help(probeHelp, 0);
    return probeCommand(values);
  }
  if (command === "proxy-worker") {
    // Internal: started by `run` when core.proxy.workers > 1 (workers/primary.ts).
    const { values } = parseArgs({
      args: rest,
      options: { config: { type: "string" }, "ready-file": { type: "string" } },
    });
    if (!values.config) return help(HELP, EX_USAGE);
    return proxyWorkerCommand(values.config, values["ready-file"]);
  }
  if (command === "haproxy-watch") {
    // Internal: started by a generation that hands HAProxy over (engine/haproxy/watch.ts).
    const { values } = parseArgs({
      args: rest,
      options: {
        dir: { type: "string" },
        "ready-file": { type: "string" },
        "previous-pid": { type: "string" },
      },
    });
    const previousPid = Number(values["previous-pid"]);
    if (!values.dir || !values["ready-file"] || !Number.isInteger(previousPid))
      return help(HELP, EX_USAGE);
    const log = createLogger("info").child({ part: "haproxy-watch" });
    const opts = { dir: values.dir, readyFile: values["ready-file"], previousPid };
    await watchHandOver(opts, log);
    return 0;
  }
  if (command === "agent") {
    const parsed = parseAgentArgs(rest);
    if (parsed.kind === "help") return help(agentHelp, 0);
    if (parsed.kind === "usage") {
      process.stderr.write(`gateway agent: ${parsed.problem}\n`);
      return help(agentHelp, EX_USAGE);
    }
    return agentCommand(parsed.options);
  }
  process.stderr.write(`gateway: unknown command "${command}"\n\n${HELP}\n`);
  return EX_USAGE;
}

function help(text: string, code: number): number {
  (code === 0 ? process.stdout : process.stderr).write(`${text}\n`);
  return code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exitCode = 2;
    } else if (
      error instanceof TypeError &&
      "code" in error &&
      String(error.code).startsWith("ERR_PARSE_ARGS")
    ) {
      process.stderr.write(`gateway: ${error.message}\n`);
      process.exitCode = EX_USAGE;
    } else {
      process.stderr.write(
        `gateway: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exitCode = 1;
    }
  },
);
