/**
 * A real pebble ACME CA (Debian package `pebble`) on 127.0.0.1 with random ports, a generated
 * config and a throwaway TLS certificate for 127.0.0.1/localhost made with openssl. DNS-01 is
 * validated against `dnsServer` (`-dnsserver`). Its environment makes runs deterministic: no VA
 * sleeps, no rejected nonces, no authorization reuse. `rootPem()` fetches the issuing root from
 * the management port (`/roots/0`; new at every start) to verify issued chains.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { freePort, stopChild } from "../../testkit/process.js";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface PebbleOptions {
  /** `ip:port` of the DNS server pebble validates DNS-01 against. */
  readonly dnsServer: string;
  /** Extra environment, e.g. `{ PEBBLE_VA_ALWAYS_VALID: "1" }`. */
  readonly env?: Readonly<Record<string, string>>;
  /** Validity of issued certificates in seconds. @default pebble's (5 years) */
  readonly validitySeconds?: number;
}

export interface Pebble {
  /** `https://127.0.0.1:<port>/dir` */
  readonly directoryUrl: string;
  /** PEM file of the CA that signed pebble's HTTPS certificate (for `acme_ca_file`). */
  readonly caFile: string;
  readonly caPem: string;
  /** The root that issued certificates chain to (management `/roots/0`). */
  rootPem(): Promise<string>;
  stop(): Promise<void>;
  /** Stops pebble and removes its directory. */
  close(): Promise<void>;
  log(): string;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8", timeout: 15_000 });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
}

function fetchText(
  url: string,
  ca: string,
  timeoutMs = 2000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { ca, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`timeout fetching ${url}`)));
    req.on("error", reject);
  });
}

function makeTlsCert(dir: string): void {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(
    [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-subj",
      "/CN=pebble test TLS root",
      "-days",
      "2",
    ],
    dir,
  );
  openssl(
    ["req", "-new", ...ec, "-keyout", "key.pem", "-out", "csr.pem", "-subj", "/CN=localhost"],
    dir,
  );
  writeFileSync(
    join(dir, "ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "csr.pem",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      "ext",
      "-out",
      "cert.pem",
    ],
    dir,
  );
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), "gw-pebble-"));
  try {
    makeTlsCert(dir);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const caFile = join(dir, "ca.pem");
  const caPem = readFileSync(caFile, "utf8");
  let child: ChildProcess | undefined;
  let output = "";
  let acmePort = 0;
  let mgmtPort = 0;

  const launch = async (): Promise<void> => {
    acmePort = await freePort();
    mgmtPort = await freePort();
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: join(dir, "cert.pem"),
        privateKey: join(dir, "key.pem"),
        httpPort: 5002,
        tlsPort: 5001,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
        ...(opts.validitySeconds ? { certificateValidityPeriod: opts.validitySeconds } : {}),
      },
    };
    writeFileSync(join(dir, "pebble.json"), JSON.stringify(config));
    output = "";
    const proc = spawn(
      "pebble",
      ["-config", join(dir, "pebble.json"), "-dnsserver", opts.dnsServer],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          PEBBLE_VA_NOSLEEP: "1",
          PEBBLE_WFE_NONCEREJECT: "0",
          PEBBLE_AUTHZREUSE: "0",
          ...opts.env,
        },
      },
    );
    child = proc;
    const collect = (d: Buffer): void => {
      output += d.toString();
    };
    proc.stdout?.on("data", collect);
    proc.stderr?.on("data", collect);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`pebble exited (${proc.exitCode}):\n${output}`);
      const dir = await fetchText(`https://127.0.0.1:${acmePort}/dir`, caPem, 1000).catch(
        () => undefined,
      );
      if (dir?.status === 200) return;
      await sleep(50);
    }
    throw new Error(`pebble did not answer within 10 s:\n${output}`);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    await stopChild(proc);
  };

  for (let attempt = 0; ; attempt++) {
    try {
      await launch();
      break;
    } catch (e) {
      await stop();
      if (attempt >= 3) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
    }
  }

  return {
    directoryUrl: `https://127.0.0.1:${acmePort}/dir`,
    caFile,
    caPem,
    async rootPem() {
      const r = await fetchText(`https://127.0.0.1:${mgmtPort}/roots/0`, caPem);
      if (r.status !== 200) throw new Error(`pebble /roots/0 answered ${r.status}`);
      return r.body;
    },
    stop,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => output,
  };
}
