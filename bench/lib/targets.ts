/**
 * What the bench measures against: the backend (nginx from Debian, plain HTTP for terminated
 * traffic and TLS for passthrough and for "direct"), and the proxies under test, all on
 * 127.0.0.1 with ephemeral ports and the same ECDSA P-256 certificate:
 * - haproxy: `mode http` with `ssl crt` (termination; `http-reuse always`, so backend
 *   connections are pooled as nginx's `keepalive` pools them), `mode tcp` routing on
 *   `req.ssl_sni` (passthrough);
 * - nginx: `http` with `listen ... ssl` (termination), `stream` with `ssl_preread` (passthrough);
 * - both with the same curves, protocols, session cache size, lifetime and ticket handling
 *   (tls-tuning.ts);
 * - ours: the bundled data plane (`bench/gateway-bench.ts`), routing by SNI label;
 * - ours-haproxy: the same bundle on the HAProxy engine (`ours-haproxy.ts`);
 * - node: the Node floor (`bench/node-floor.ts`), the least a Node proxy can do;
 * - base: ours as of another commit (`--base <rev>`), to measure a change against the code
 *   before it in the same rounds;
 * - direct: no proxy, the client talks TLS to the backend (the limit).
 * Every proxy runs one worker/thread, pinned to the proxy core.
 */
import { chmodSync, createWriteStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, HOST, readLineUntil, waitForPort } from "./net.js";
import type { Proc, ProcessSet } from "./procs.js";
import { haproxyTlsGlobal, nginxTls } from "./tls-tuning.js";

export type TargetName = "direct" | "haproxy" | "nginx" | "ours" | "ours-haproxy" | "node" | "base";
export const PROXIES = [
  "haproxy",
  "nginx",
  "ours",
  "ours-haproxy",
  "node",
  "base",
] as const satisfies readonly TargetName[];

export const BASE_DOMAIN = "app.test.example";
/** The app id our gateway routes to (lowercase hex, as the grammar wants). */
export const APP_ID = "5ca1ab1e0ddba11";

export interface Endpoint {
  readonly port: number;
  /** The name the client sends (and puts in its URL). */
  readonly sni: string;
}

export interface Target {
  readonly name: TargetName;
  /** The proxy's process group; undefined for "direct". */
  readonly proc: Proc | undefined;
  /** TLS terminated by the target, plain HTTP to the backend. */
  readonly term: Endpoint;
  /** TLS passed through to the backend's TLS port. */
  readonly pass: Endpoint;
  /** Ours only: SIGUSR2 makes the process write `process.memoryUsage()` here. */
  readonly memoryFile?: string;
}

export interface Backend {
  readonly proc: Proc;
  readonly httpPort: number;
  readonly tlsPort: number;
  /** HTTP/2 without TLS (prior knowledge), for the gateway's `g` routes; only when asked for. */
  readonly h2cPort?: number;
}

export interface BackendOptions {
  /** Where it listens: the soak's instance has a tunnel address of its own. @default HOST */
  readonly address?: string;
  /** Also serve HTTP/2 without TLS on a third port. */
  readonly h2c?: boolean;
}

export interface Env {
  readonly ps: ProcessSet;
  /** Configs, logs, pid files; world-readable so nginx workers (nobody) can read the files. */
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly proxyCpus: string;
  readonly clientCpus: string;
  readonly clientCpuCount: number;
}

/** Names that route through our gateway; the other proxies accept the same names. */
export function routeNames(backend: Backend): { term: string; pass: string } {
  return {
    term: `${APP_ID}-${backend.httpPort}.${BASE_DOMAIN}`,
    pass: `${APP_ID}-${backend.tlsPort}s.${BASE_DOMAIN}`,
  };
}

export const SMALL_BODY = "ok\n";
export const LARGE_PATH = "/1m";
export const LARGE_BYTES = 1024 * 1024;

function nginxCommon(env: Env, name: string, workers: number): string {
  const tmp = join(env.dir, `${name}-tmp`);
  mkdirSync(tmp, { recursive: true });
  chmodSync(tmp, 0o777);
  return `
worker_processes ${workers};
daemon off;
pid ${join(env.dir, `${name}.pid`)};
error_log ${join(env.dir, `${name}-error.log`)} warn;
worker_rlimit_nofile 19000;
events { worker_connections 12000; }
`;
}

/** `tls`: a target's TLS tuning (tls-tuning.ts) instead of the backend's plain session cache. */
function nginxHttpCommon(env: Env, name: string, tls?: string): string {
  const tmp = join(env.dir, `${name}-tmp`);
  return `
  access_log off;
  server_tokens off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_certificate ${env.certFile};
  ssl_certificate_key ${env.keyFile};
${tls ?? `  ssl_session_cache shared:${name}:10m;`}
`;
}

export async function startBackend(env: Env, opts: BackendOptions = {}): Promise<Backend> {
  const address = opts.address ?? HOST;
  const [httpPort, tlsPort] = [await freePort(), await freePort()];
  const h2cPort = opts.h2c ? await freePort() : undefined;
  const large = join(env.dir, "1m.bin");
  writeFileSync(large, Buffer.alloc(LARGE_BYTES, 0x61));
  chmodSync(large, 0o644);
  const locations = `
    location = ${LARGE_PATH} { default_type application/octet-stream; alias ${large}; }
    location / { default_type text/plain; return 200 "${SMALL_BODY.replace("\n", "\\n")}"; }`;
  const conf = `${nginxCommon(env, "backend", env.clientCpuCount)}
http {${nginxHttpCommon(env, "backend")}
  sendfile on;
  server { listen ${address}:${httpPort} backlog=4096; ${locations} }
  server { listen ${address}:${tlsPort} ssl backlog=4096; ${locations} }${
    h2cPort === undefined ? "" : `\n  server { listen ${address}:${h2cPort} http2; ${locations} }`
  }
}
`;
  const file = join(env.dir, "backend.conf");
  writeFileSync(file, conf);
  const proc = env.ps.spawn(
    "backend",
    "nginx",
    ["-c", file, "-e", join(env.dir, "backend-error.log")],
    {
      cpus: env.clientCpus,
      logDir: env.dir,
    },
  );
  for (const port of [httpPort, tlsPort, h2cPort]) {
    if (port !== undefined) await waitForPort(port, proc, 10_000, address);
  }
  return { proc, httpPort, tlsPort, ...(h2cPort === undefined ? {} : { h2cPort }) };
}

export function direct(backend: Backend): Target {
  const names = routeNames(backend);
  return {
    name: "direct",
    proc: undefined,
    term: { port: backend.tlsPort, sni: names.term },
    pass: { port: backend.tlsPort, sni: names.pass },
  };
}

export async function startHaproxy(env: Env, backend: Backend): Promise<Target> {
  const [termPort, passPort] = [await freePort(), await freePort()];
  const names = routeNames(backend);
  const pem = join(env.dir, "haproxy.pem"); // haproxy wants certificate and key in one file
  writeFileSync(pem, readFileSync(env.certFile, "utf8") + readFileSync(env.keyFile, "utf8"), {
    mode: 0o600,
  });
  const conf = `
global
  nbthread 1
  maxconn 6000
  pidfile ${join(env.dir, "haproxy.pid")}
${haproxyTlsGlobal()}

defaults
  maxconn 6000
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-request 10s
  timeout http-keep-alive 300s
  timeout client-fin 5s

frontend term
  mode http
  bind ${HOST}:${termPort} ssl crt ${pem} alpn http/1.1
  default_backend plain

backend plain
  mode http
  http-reuse always
  server b ${HOST}:${backend.httpPort}

frontend pass
  mode tcp
  bind ${HOST}:${passPort}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend tls if { req.ssl_sni -m end .${BASE_DOMAIN} }

backend tls
  mode tcp
  server b ${HOST}:${backend.tlsPort}
`;
  const file = join(env.dir, "haproxy.cfg");
  writeFileSync(file, conf);
  const proc = env.ps.spawn("haproxy", "haproxy", ["-db", "-f", file], {
    cpus: env.proxyCpus,
    logDir: env.dir,
  });
  await waitForPort(termPort, proc);
  await waitForPort(passPort, proc);
  return {
    name: "haproxy",
    proc,
    term: { port: termPort, sni: names.term },
    pass: { port: passPort, sni: names.pass },
  };
}

export async function startNginx(env: Env, backend: Backend): Promise<Target> {
  const [termPort, passPort] = [await freePort(), await freePort()];
  const names = routeNames(backend);
  const domain = BASE_DOMAIN.replaceAll(".", "\\.");
  const tls = nginxTls("nginx");
  const conf = `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
${nginxCommon(env, "nginx", 1)}
http {${nginxHttpCommon(env, "nginx", tls)}
  upstream plain { server ${HOST}:${backend.httpPort}; keepalive 64; }
  server {
    listen ${HOST}:${termPort} ssl backlog=4096;
    location / {
      proxy_pass http://plain;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
stream {
  map $ssl_preread_server_name $tls_upstream {
    ~${domain}$ ${HOST}:${backend.tlsPort};
    default ${HOST}:9;
  }
  server {
    listen ${HOST}:${passPort} backlog=4096;
    ssl_preread on;
    proxy_pass $tls_upstream;
  }
}
`;
  const file = join(env.dir, "nginx.conf");
  writeFileSync(file, conf);
  const proc = env.ps.spawn(
    "nginx",
    "nginx",
    ["-c", file, "-e", join(env.dir, "nginx-error.log")],
    {
      cpus: env.proxyCpus,
      logDir: env.dir,
    },
  );
  await waitForPort(termPort, proc);
  await waitForPort(passPort, proc);
  return {
    name: "nginx",
    proc,
    term: { port: termPort, sni: names.term },
    pass: { port: passPort, sni: names.pass },
  };
}

export interface OursOptions {
  /** Bundled entry, `bench/.build/gateway-bench.mjs` (or `node-floor.mjs` for the floor). */
  readonly entry: string;
  /** The node binary. @default this process's (`process.execPath`) */
  readonly nodeBin?: string;
  /** Node flags, e.g. the unit's `NODE_FLAGS`, `--cpu-prof`. */
  readonly nodeFlags?: readonly string[];
  /** The process's name (logs); @default the target's */
  readonly name?: string;
  /** Ours only: healthy instances of the app (`gateway-bench.ts --instances`). @default 1 */
  readonly instances?: number;
  /** Ours only: `core.proxy.connect_attempt_delay`, e.g. "250ms"; @default the config's ("0s") */
  readonly attemptDelay?: string;
  /** Ours only: `core.proxy.workers` (`gateway-bench.ts --workers`). @default 1 */
  readonly workers?: number;
}

/** Starts one of the bench's own Node proxies and reads the JSON line it prints when listening. */
export async function startNodeEntry<T>(
  env: Env,
  opts: OursOptions & { readonly name: string },
  args: readonly string[],
  ready: (line: Record<string, unknown>) => T | undefined,
): Promise<{ proc: Proc; memoryFile: string; value: T }> {
  const memoryFile = join(env.dir, `${opts.name}-memory.json`);
  const argv = [...(opts.nodeFlags ?? []), opts.entry, "--memory-file", memoryFile, ...args];
  const proc = env.ps.spawn(opts.name, opts.nodeBin ?? process.execPath, argv, {
    cpus: env.proxyCpus,
    stdout: "pipe",
    logDir: env.dir,
  });
  const stdout = proc.child.stdout;
  if (!stdout) throw new Error(`${opts.name} has no stdout`);
  const value = await readLineUntil(
    stdout,
    (line) => {
      try {
        return ready(JSON.parse(line) as Record<string, unknown>);
      } catch {
        return undefined;
      }
    },
    15_000,
    `${opts.name} (see ${proc.logFile})`,
  );
  // Nothing more is expected there; keep it in the log (e.g. `--trace-gc` output), never let
  // the pipe fill.
  stdout.pipe(createWriteStream(proc.logFile, { flags: "a" }));
  return { proc, memoryFile, value };
}

export const isPort = (v: unknown): v is number => typeof v === "number" && v > 0;

export async function startOurs(
  env: Env,
  backend: Backend,
  opts: OursOptions & { readonly target?: "ours" | "base" },
): Promise<Target> {
  const args = [
    ...["--cert", env.certFile, "--key", env.keyFile, "--app", APP_ID],
    ...["--instances", String(opts.instances ?? 1)],
    ...(opts.attemptDelay !== undefined ? ["--connect-attempt-delay", opts.attemptDelay] : []),
    ...(opts.workers !== undefined && opts.workers > 1 ? ["--workers", String(opts.workers)] : []),
  ];
  const target = opts.target ?? "ours";
  const {
    proc,
    memoryFile,
    value: port,
  } = await startNodeEntry(env, { ...opts, name: opts.name ?? target }, args, (v) =>
    isPort(v.port) ? v.port : undefined,
  );
  await waitForPort(port, proc);
  const names = routeNames(backend);
  return {
    name: target,
    proc,
    term: { port, sni: names.term },
    pass: { port, sni: names.pass },
    memoryFile,
  };
}

/** The Node floor (`bench/node-floor.ts`): no routing, plain pipes, the same TLS policy. */
export async function startNodeFloor(
  env: Env,
  backend: Backend,
  opts: OursOptions,
): Promise<Target> {
  const args = [
    ...["--cert", env.certFile, "--key", env.keyFile],
    ...["--http-port", String(backend.httpPort), "--tls-port", String(backend.tlsPort)],
  ];
  const { proc, memoryFile, value } = await startNodeEntry(
    env,
    { ...opts, name: opts.name ?? "node" },
    args,
    (v) => (isPort(v.term) && isPort(v.pass) ? { term: v.term, pass: v.pass } : undefined),
  );
  await waitForPort(value.term, proc);
  await waitForPort(value.pass, proc);
  const names = routeNames(backend);
  return {
    name: "node",
    proc,
    term: { port: value.term, sni: names.term },
    pass: { port: value.pass, sni: names.pass },
    memoryFile,
  };
}
