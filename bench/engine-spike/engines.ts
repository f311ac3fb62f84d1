/**
 * The two native proxies of the engine spike, each terminating TLS for SNI names on one port
 * and relaying the plain bytes (L4) to a backend chosen by the name, and each taking route
 * changes the only way it can without a restart:
 * - HAProxy, master-worker (`-W -S <master socket>`), changes through the runtime API on the
 *   worker's stats socket (`expose-fd listeners`, so a reload could take the listeners over):
 *   a backend cannot be created at runtime, so the config declares empty backend slots and a
 *   map file; a route is `add server <slot>/<name> <addr>` + `enable server`, then
 *   `add map <file> <sni> <slot>`, and goes with `del map`, `disable server`,
 *   `shutdown sessions server`, `del server`. Nothing is reloaded.
 * - nginx, `stream` with `listen ... ssl` and `map $ssl_server_name`: the config is rewritten and
 *   the master gets SIGHUP (`nginx -s reload`); new workers start, the old ones stop accepting
 *   and stay until their last connection ends (no `worker_shutdown_timeout`).
 * Both run one worker (thread), pinned to the proxy core, with the same certificate, curves
 * (X25519, P-256), protocols (TLS 1.2-1.3) and a 10 MB-class session cache.
 */
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { HOST, waitForPort } from "../lib/net.js";
import type { Proc, ProcessSet } from "../lib/procs.js";

export interface EngineEnv {
  readonly ps: ProcessSet;
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly cpus: string;
  readonly port: number;
}

/** name → backend port; what the proxy should route after a change. */
export type Routes = ReadonlyMap<string, number>;

export interface Engine {
  readonly name: "haproxy" | "haproxy-reload" | "nginx";
  readonly proc: Proc;
  /** Routes `add` (a new name), drops `remove`; resolves once the proxy has taken the order. */
  change(routes: Routes, add: string, remove: string | undefined): Promise<void>;
  /** HAProxy's runtime API only: the served certificate and key (one PEM), without a reload. */
  replaceCert?(pem: string): Promise<void>;
}

const SLOTS = 8;
const COMMAND_TIMEOUT_MS = 5000;

/** One runtime API command on a stats socket; resolves with the answer (the socket closes). */
export function runtimeCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`haproxy "${command}": no answer in ${COMMAND_TIMEOUT_MS} ms`));
    }, COMMAND_TIMEOUT_MS);
    s.once("connect", () => s.write(`${command}\n`));
    s.on("data", (c: Buffer) => chunks.push(c));
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.once("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("utf8").trim());
    });
  });
}

interface HaproxyFiles {
  readonly pem: string;
  readonly mapFile: string;
  readonly admin: string;
}

/** Each route present gets a static backend; the runtime API's changes use the empty slots. */
function haproxyConf(env: EngineEnv, routes: Routes, f: HaproxyFiles): string {
  const statics = [...routes].map(([name, port], i) => ({ name, port, backend: `static_${i}` }));
  writeFileSync(f.mapFile, statics.map((r) => `${r.name} ${r.backend}\n`).join(""));
  return `
global
  nbthread 1
  maxconn 6000
  pidfile ${join(env.dir, "haproxy.pid")}
  stats socket ${f.admin} mode 600 level admin expose-fd listeners
  ssl-default-bind-curves X25519:P-256
  ssl-default-bind-options ssl-min-ver TLSv1.2
  tune.ssl.cachesize 20000

defaults
  mode tcp
  maxconn 6000
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout client-fin 5s

frontend fe
  bind ${HOST}:${env.port} ssl crt ${f.pem}
  use_backend %[ssl_fc_sni,lower,map(${f.mapFile},none)]

backend none
${statics.map((r) => `\nbackend ${r.backend}\n  server s0 ${HOST}:${r.port}\n`).join("")}
${Array.from({ length: SLOTS }, (_, i) => `backend slot_${i}\n  balance leastconn\n`).join("\n")}`;
}

/**
 * HAProxy in master-worker mode. "api": changes through the runtime API, no reload;
 * "reload": the config rewritten and the master told to reload (SIGUSR2, as `systemctl reload`
 * does), for comparison with nginx's only way.
 */
export async function startHaproxy(
  env: EngineEnv,
  routes: Routes,
  mode: "api" | "reload",
): Promise<Engine> {
  const f: HaproxyFiles = {
    pem: join(env.dir, "haproxy.pem"),
    mapFile: join(env.dir, "routes.map"),
    admin: join(env.dir, "haproxy-admin.sock"),
  };
  writeFileSync(f.pem, readFileSync(env.certFile, "utf8") + readFileSync(env.keyFile, "utf8"), {
    mode: 0o600,
  });
  const file = join(env.dir, "haproxy.cfg");
  writeFileSync(file, haproxyConf(env, routes, f));
  const master = join(env.dir, "haproxy-master.sock");
  const proc = env.ps.spawn("haproxy", "haproxy", ["-W", "-S", master, "-db", "-f", file], {
    cpus: env.cpus,
    logDir: env.dir,
  });
  await waitForPort(env.port, proc);
  const slotOf = new Map<string, string>();
  let next = 0;
  const run = async (command: string, expect: RegExp): Promise<void> => {
    const answer = await runtimeCommand(f.admin, command);
    if (!expect.test(answer)) throw new Error(`haproxy "${command.split("\n")[0]}": ${answer}`);
  };
  if (mode === "reload")
    return {
      name: "haproxy-reload",
      proc,
      async change(routes) {
        writeFileSync(file, haproxyConf(env, routes, f));
        process.kill(proc.pid, "SIGUSR2");
      },
    };
  return {
    name: "haproxy",
    proc,
    async change(routes, add, remove) {
      const slot = `slot_${next++ % SLOTS}`;
      slotOf.set(add, slot);
      await run(`add server ${slot}/s0 ${HOST}:${routes.get(add)}`, /New server registered/);
      await run(`enable server ${slot}/s0`, /^$/);
      await run(`add map ${f.mapFile} ${add} ${slot}`, /^$/);
      const old = remove === undefined ? undefined : slotOf.get(remove);
      if (remove === undefined || old === undefined) return;
      slotOf.delete(remove);
      await run(`del map ${f.mapFile} ${remove}`, /^$/);
      await run(`disable server ${old}/s0`, /^$/);
      await run(`shutdown sessions server ${old}/s0`, /^$/);
      await run(`del server ${old}/s0`, /Server deleted/);
    },
    async replaceCert(pem) {
      await run(`set ssl cert ${f.pem} <<\n${pem.trim()}\n`, /Transaction (created|updated)/);
      await run(`commit ssl cert ${f.pem}`, /Success/);
    },
  };
}

function nginxConf(env: EngineEnv, routes: Routes): string {
  const ups = [...routes].map(([name, port], i) => ({ name, port, up: `app_${i}` }));
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid ${join(env.dir, "nginx.pid")};
error_log ${join(env.dir, "nginx-error.log")} warn;
worker_rlimit_nofile 19000;
events { worker_connections 12000; }
stream {
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_ecdh_curve X25519:prime256v1;
  ssl_certificate ${env.certFile};
  ssl_certificate_key ${env.keyFile};
  ssl_session_cache shared:spike:10m;
  proxy_connect_timeout 5s;
  proxy_timeout 300s;
  upstream none { server ${HOST}:9; }
${ups.map((u) => `  upstream ${u.up} { server ${HOST}:${u.port}; }\n`).join("")}
  map $ssl_server_name $route {
    default none;
${ups.map((u) => `    ${u.name} ${u.up};\n`).join("")}  }
  server {
    listen ${HOST}:${env.port} ssl backlog=4096;
    proxy_pass $route;
  }
}
`;
}

export async function startNginx(env: EngineEnv, routes: Routes): Promise<Engine> {
  const file = join(env.dir, "nginx.conf");
  chmodSync(env.dir, 0o755); // workers run as nobody
  writeFileSync(file, nginxConf(env, routes));
  const proc = env.ps.spawn(
    "nginx",
    "nginx",
    ["-c", file, "-e", join(env.dir, "nginx-error.log")],
    { cpus: env.cpus, logDir: env.dir },
  );
  await waitForPort(env.port, proc);
  return {
    name: "nginx",
    proc,
    async change(routes) {
      writeFileSync(file, nginxConf(env, routes));
      process.kill(proc.pid, "SIGHUP"); // what `nginx -s reload` sends
    },
  };
}
