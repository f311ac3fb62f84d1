import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadConfigFile } from "../config/index.js";
import { expectedSerial } from "../probe/expected.js";
import { type ProbeOptions, parseAddress, type RouteForm, runProbe } from "../probe/index.js";
import { adminCall } from "./admin.js";

export const probeHelp = `Usage: gateway probe (--config FILE | --region BASE_DOMAIN) [options]

Checks a gateway the way a client sees it, one gate at a time, each retried up to --timeout;
prints a line per gate and exits 1 at the first that fails, naming it.

  certificate     TLS to health.<base>: the chain is trusted (Node's roots and --ca), covers
                  the name, has not expired, and has the region's serial: with --config, the
                  pair in etcd (core.cluster) or core.proxy.cert_chain; else every address
                  serves the first one's (or --expect-serial)
  ready           --ready-file names --ready-pid (the service's main pid)
  registrations   --instances-at-least N: Admin.Status lists at least N instances (--config)
  health          --health: https://health.<base>/health answers 200 at every address
  canary route    --canary APP: https://<app>.<base>/ answers below 500, and with
                  --canary-port P <app>-P, --canary-tls-port P <app>-Ps (passthrough),
                  --canary-h2-port P <app>-Pg (ALPN h2)

Where: --connect HOST:PORT (repeatable) probes every name there (a host probing itself);
otherwise each name is resolved at every address it has, with --resolve NAME:IP (repeatable;
NAME may be *.<base>), --dns-server IP:PORT (repeatable) or the system's resolver, on --port
(443). --ca FILE (repeatable) adds trusted CAs; --timeout SECONDS (60) bounds each gate,
--attempt-timeout SECONDS (5) each connection.`;

export function parseProbeArgs(args: string[]) {
  return parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      region: { type: "string" },
      connect: { type: "string", multiple: true, default: [] },
      resolve: { type: "string", multiple: true, default: [] },
      "dns-server": { type: "string", multiple: true, default: [] },
      port: { type: "string", default: "443" },
      ca: { type: "string", multiple: true, default: [] },
      "ready-file": { type: "string" },
      "ready-pid": { type: "string" },
      "instances-at-least": { type: "string" },
      "expect-serial": { type: "string" },
      health: { type: "boolean", default: false },
      canary: { type: "string" },
      "canary-port": { type: "string" },
      "canary-tls-port": { type: "string" },
      "canary-h2-port": { type: "string" },
      timeout: { type: "string", default: "60" },
      "attempt-timeout": { type: "string", default: "5" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
}

type ProbeArgs = ReturnType<typeof parseProbeArgs>;

class UsageError extends Error {}

function number(text: string | undefined, flag: string, min: number, max: number): number {
  const n = Number(text);
  if (text === undefined || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, got ${text}`);
  }
  return n;
}

function canaryForms(v: ProbeArgs): RouteForm[] {
  const port = (flag: "canary-port" | "canary-tls-port" | "canary-h2-port") =>
    v[flag] === undefined ? undefined : number(v[flag], flag, 1, 65535);
  const forms: RouteForm[] = [{ kind: "terminate" }];
  const p = port("canary-port");
  const s = port("canary-tls-port");
  const g = port("canary-h2-port");
  if (p !== undefined) forms.push({ kind: "port", port: p });
  if (s !== undefined) forms.push({ kind: "passthrough", port: s });
  if (g !== undefined) forms.push({ kind: "h2", port: g });
  return forms;
}

/** `NAME:IP` pairs (curl's --resolve, without the port) by name. */
function fixedAnswers(pairs: readonly string[]): Map<string, string[]> {
  const byName = new Map<string, string[]>();
  for (const pair of pairs) {
    const colon = pair.indexOf(":");
    if (colon <= 0) throw new UsageError(`--resolve takes NAME:IP, got ${pair}`);
    const name = pair.slice(0, colon).toLowerCase();
    byName.set(name, [...(byName.get(name) ?? []), pair.slice(colon + 1).replace(/^\[|\]$/g, "")]);
  }
  return byName;
}

export async function probeCommand(
  v: ProbeArgs,
  print: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Promise<number> {
  let options: ProbeOptions;
  try {
    const config = v.config === undefined ? undefined : loadConfigFile(v.config);
    const baseDomain = config?.core.proxy.base_domain ?? v.region;
    if (baseDomain === undefined)
      throw new UsageError("give --config FILE or --region BASE_DOMAIN");
    if ((v["ready-file"] === undefined) !== (v["ready-pid"] === undefined)) {
      throw new UsageError("--ready-file and --ready-pid go together");
    }
    if (v["instances-at-least"] !== undefined && v.config === undefined) {
      throw new UsageError("--instances-at-least reads Admin.Status: it needs --config");
    }
    if (
      v.canary === undefined &&
      (v["canary-port"] ?? v["canary-tls-port"] ?? v["canary-h2-port"])
    ) {
      throw new UsageError("--canary-*-port needs --canary APP");
    }
    const port = number(v.port, "port", 1, 65535);
    const configFile = v.config;
    let serial = v["expect-serial"];
    if (serial === undefined && config !== undefined) {
      try {
        const expected = await expectedSerial(config);
        print(`the region's certificate: serial ${expected.serial} (${expected.source})`);
        serial = expected.serial;
      } catch (e) {
        print(`FAIL certificate: cannot read the region's certificate: ${(e as Error).message}`);
        print('probe failed: gate "certificate"');
        return 1;
      }
    }
    options = {
      baseDomain,
      connect: v.connect.map((a) => parseAddress(a, port)),
      resolve: fixedAnswers(v.resolve),
      dnsServers: v["dns-server"],
      port,
      ca: v.ca.map((file) => readFileSync(file, "utf8")),
      ready:
        v["ready-file"] === undefined
          ? undefined
          : { file: v["ready-file"], pid: v["ready-pid"] as string },
      expectedSerial: serial,
      registrations:
        v["instances-at-least"] === undefined || configFile === undefined
          ? undefined
          : {
              atLeast: number(v["instances-at-least"], "instances-at-least", 0, 1e9),
              count: async () => {
                const answer = await adminCall(configFile, "Status");
                if (answer === undefined || answer.status >= 400) {
                  throw new Error(
                    `Admin.Status failed: ${answer?.body.trim() ?? "admin API disabled"}`,
                  );
                }
                return (JSON.parse(answer.body) as { hosts: unknown[] }).hosts.length;
              },
            },
      health: v.health,
      canary: v.canary === undefined ? undefined : { app: v.canary, forms: canaryForms(v) },
      timeoutMs: number(v.timeout, "timeout", 1, 3600) * 1000,
      attemptTimeoutMs: number(v["attempt-timeout"], "attempt-timeout", 1, 600) * 1000,
      print,
    };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`gateway probe: ${e.message}\n\n${probeHelp}\n`);
    return 64;
  }
  const result = await runProbe(options);
  return result.ok ? 0 : 1;
}
