/**
 * A real BIND (`named -g`) on 127.0.0.1:<random port> (UDP and TCP) serving one primary zone
 * that accepts RFC 2136 updates signed with a fresh TSIG key. `dig` reads records back. The
 * server can be stopped and started again on the same port (its journal keeps the updates).
 * Needs the Debian packages `bind9` (named) and `bind9-dnsutils` (dig).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { stopChild } from "../../testkit/process.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

export type TsigAlgorithm = "hmac-sha256" | "hmac-sha512";

export interface BindOptions {
  /** Zone to serve, e.g. `app.test.example`. */
  readonly zone: string;
  /** @default "hmac-sha256" */
  readonly algorithm?: TsigAlgorithm;
  /** Extra zone-file lines, e.g. `_acme-challenge IN TXT "other"`. */
  readonly records?: readonly string[];
}

export interface BindServer {
  readonly port: number;
  /** `127.0.0.1:<port>` */
  readonly address: string;
  readonly zone: string;
  readonly keyName: string;
  readonly algorithm: TsigAlgorithm;
  /** TSIG secret, base64. */
  readonly secret: string;
  /** Answers from `dig +short` for `name` and `type` (TXT quotes removed, chunks joined). */
  dig(name: string, type: "TXT" | "CAA" | "SOA" | "A"): Promise<string[]>;
  /** Stops named (the port becomes free; updates stay in the journal). */
  stop(): Promise<void>;
  /** Starts named again after `stop()`, on the same port. */
  start(): Promise<void>;
  /** Stops named and removes its directory. */
  close(): Promise<void>;
  /** named's output so far, for failure messages. */
  log(): string;
}

async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const tcp = createServer();
    tcp.listen(0, "127.0.0.1");
    await once(tcp, "listening");
    const address = tcp.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const udp = createSocket("udp4");
    const ok = await new Promise<boolean>((resolve) => {
      udp.once("error", () => resolve(false));
      udp.bind(port, "127.0.0.1", () => resolve(true));
    });
    if (ok) await new Promise<void>((r) => udp.close(() => r()));
    await new Promise<void>((r) => tcp.close(() => r()));
    if (ok) return port;
  }
  throw new Error("no free port for named");
}

/** Joins the quoted chunks of one `dig +short` TXT line: `"a" "b"` -> `ab`. */
export function unquoteTxt(line: string): string {
  const chunks = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? "");
  return chunks.length === 0 ? line : chunks.join("").replace(/\\(.)/g, "$1");
}

export async function startBind(opts: BindOptions): Promise<BindServer> {
  const dir = mkdtempSync(join(tmpdir(), "gw-bind-"));
  const zone = opts.zone.replace(/\.$/, "");
  const algorithm = opts.algorithm ?? "hmac-sha256";
  const keyName = "gateway-test-key";
  const secret = randomBytes(algorithm === "hmac-sha512" ? 64 : 32).toString("base64");
  const zoneLines = [
    "$TTL 60",
    `@ IN SOA ns1.${zone}. hostmaster.${zone}. 1 60 60 600 0`,
    `@ IN NS ns1.${zone}.`,
    "ns1 IN A 127.0.0.1",
    ...(opts.records ?? []),
  ];
  writeFileSync(join(dir, "zone.db"), `${zoneLines.join("\n")}\n`);
  let port = 0;
  let child: ChildProcess | undefined;
  let output = "";

  const writeConf = (): string => {
    const conf = join(dir, "named.conf");
    writeFileSync(
      conf,
      `key "${keyName}" { algorithm ${algorithm}; secret "${secret}"; };
options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  session-keyfile "${dir}/session.key";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  allow-transfer { none; };
  notify no;
};
controls { };
zone "${zone}" { type primary; file "${dir}/zone.db"; allow-update { key "${keyName}"; }; };
`,
    );
    return conf;
  };

  const dig = async (name: string, type: string, timeoutS = 2): Promise<string[]> => {
    const args = ["@127.0.0.1", "-p", String(port), "+short", `+time=${timeoutS}`, "+tries=1"];
    const { stdout } = await run("dig", [...args, name, type], { timeout: 10_000 });
    const lines = stdout.split("\n").filter((l) => l.trim() !== "" && !l.startsWith(";"));
    return type === "TXT" ? lines.map(unquoteTxt) : lines;
  };

  const launch = async (): Promise<void> => {
    const conf = writeConf();
    const proc = spawn("named", ["-g", "-4", "-n", "1", "-c", conf], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    proc.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    proc.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`named exited (${proc.exitCode}):\n${output}`);
      if (/could not listen|address in use/i.test(output)) throw new Error("port in use");
      if (output.includes("running")) {
        const soa = await dig(zone, "SOA", 1).catch(() => []);
        if (soa.length > 0) return;
      }
      await sleep(50);
    }
    throw new Error(`named did not answer within 10 s:\n${output}`);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    await stopChild(proc);
  };

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (e) {
      await stop();
      if (attempt >= 4) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
    }
  }

  return {
    port,
    address: `127.0.0.1:${port}`,
    zone,
    keyName,
    algorithm,
    secret,
    dig: (name, type) => dig(name, type),
    stop,
    start: launch,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => output,
  };
}
