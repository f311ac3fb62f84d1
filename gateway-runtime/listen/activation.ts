/**
 * Listening sockets handed to the gateway instead of bound by it (ARCHITECTURE.md "Hand-over").
 * Under systemd, socket units (`gateway-tls.socket`, `gateway-http.socket`, `gateway-rpc.socket`)
 * hold the TLS, redirect and RPC ports and pass them to every start of the service as
 * LISTEN_FDS/LISTEN_FDNAMES (sd_listen_fds(3)): the sockets and their accept queues belong to
 * systemd and outlive every gateway process, so a new generation serves from the same queue
 * the old one stops reading, and no connection is refused in between. The primary passes the
 * data-plane ones on to its proxy workers as `GATEWAY_LISTEN_FDS` (`name=fd,...`): a worker's
 * pid is not known before it is forked, so LISTEN_PID could not name it.
 * Without either, each listener binds its own port (tests, `gateway run` by hand).
 */
import type { Server } from "node:net";

/** The names the socket units give their descriptors (`FileDescriptorName=`). */
export type ListenName = "tls" | "http" | "rpc";
export type ListenFds = Partial<Record<ListenName, number>>;

const NAMES = new Set<string>(["tls", "http", "rpc"]);
/** SD_LISTEN_FDS_START: systemd's descriptors start at 3. */
const FIRST_FD = 3;
const WORKER_VAR = "GATEWAY_LISTEN_FDS";

/**
 * The descriptors this process was handed, by name; empty when none. Consumes the variables
 * (as sd_listen_fds(1) does), so no child (wireguard-go, a `wg` command) mistakes them for its own.
 */
export function inheritedListeners(
  env: NodeJS.ProcessEnv = process.env,
  pid: number = process.pid,
): ListenFds {
  const fds: ListenFds = {};
  const own = env[WORKER_VAR];
  if (own !== undefined) {
    for (const pair of own.split(",")) {
      const [name, fd] = pair.split("=");
      if (name !== undefined && NAMES.has(name) && /^\d+$/.test(fd ?? ""))
        fds[name as ListenName] = Number(fd);
    }
  } else if (env.LISTEN_PID === String(pid)) {
    const count = Number(env.LISTEN_FDS);
    const names = (env.LISTEN_FDNAMES ?? "").split(":");
    for (let i = 0; Number.isInteger(count) && i < count; i++) {
      const name = names[i];
      if (name !== undefined && NAMES.has(name)) fds[name as ListenName] = FIRST_FD + i;
    }
  }
  for (const key of [WORKER_VAR, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]) delete env[key];
  return fds;
}

/** Whether the data plane's ports come from outside: then they outlive this process. */
export function handedOver(fds: ListenFds): boolean {
  return fds.tls !== undefined;
}

/**
 * How a worker forked with `stdio[3 + i] = fds[i]` finds them: `GATEWAY_LISTEN_FDS` for its
 * env, and the descriptors in the order they must be placed.
 */
export function forWorker(fds: ListenFds): { env: string; order: number[] } {
  const entries = (["tls", "http"] as const).flatMap((name) => {
    const fd = fds[name];
    return fd === undefined ? [] : [[name, fd] as const];
  });
  return {
    env: entries.map(([name], i) => `${name}=${FIRST_FD + i}`).join(","),
    order: entries.map(([, fd]) => fd),
  };
}

export const WORKER_LISTEN_VAR = WORKER_VAR;

/**
 * Listens on the descriptor `fd` when there is one, else binds `port` on `host`. `exclusive`:
 * a proxy worker owns its copy of the descriptor; without it, node:cluster would ask the
 * primary to open that descriptor number in the primary's own table.
 */
export function listenOn(
  server: Server,
  where: { fd?: number | undefined; port: number; host: string; backlog?: number },
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if (where.fd !== undefined) {
      server.listen({ fd: where.fd, exclusive: true, backlog: where.backlog ?? 511 }, done);
    } else {
      server.listen({ port: where.port, host: where.host, backlog: where.backlog ?? 511 }, done);
    }
  });
}
