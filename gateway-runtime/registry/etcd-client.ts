/**
 * The etcd client of a gateway host: endpoints as `host:port`, TLS when a CA is given (client
 * certificate and key too when etcd asks for them). Every unary request is bounded by
 * `timeoutMs`; the watch reconnects after a short backoff, resuming where it stopped.
 */
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { ExponentialBackoff, type IBackoff } from "cockatiel";
import { Etcd3 } from "etcd3";
import type { GatewayConfig } from "../config/index.js";
import { GatewayError } from "../errors.js";

export interface EtcdClientOptions {
  /** `host:port` of each etcd member. */
  readonly endpoints: readonly string[];
  /** PEM CA etcd's server certificates chain to; without it the connection is plain. */
  readonly caFile?: string | undefined;
  /** The name the members' certificates carry, checked instead of each endpoint's host. */
  readonly serverName?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** Bound on one request and on connecting, ms. */
  readonly timeoutMs: number;
  /**
   * How often an idle-looking connection is pinged, ms; at least etcd's
   * `--grpc-keepalive-min-time` (5 s by default), or etcd hangs up. @default 10_000
   */
  readonly keepaliveMs?: number;
}

/** The client options `core.cluster.etcd` gives. */
export function etcdClientOptions(
  etcd: GatewayConfig["core"]["cluster"]["etcd"],
): EtcdClientOptions {
  return {
    endpoints: etcd.endpoints,
    caFile: etcd.ca_file,
    serverName: etcd.server_name,
    certFile: etcd.cert_file,
    keyFile: etcd.key_file,
    timeoutMs: etcd.timeout,
  };
}

async function readPem(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new GatewayError(
      "E_CLUSTER_CONFIG",
      `cannot read core.cluster.etcd.${what} ${file}: ${(error as Error).message}`,
    );
  }
}

/** `host` of `host:port`, `[v6]:port` or a bare host. */
function hostOf(endpoint: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(endpoint);
  if (bracketed) return bracketed[1] as string;
  const colon = endpoint.lastIndexOf(":");
  return colon > 0 && endpoint.indexOf(":") === colon ? endpoint.slice(0, colon) : endpoint;
}

export async function connectEtcd(o: EtcdClientOptions): Promise<Etcd3> {
  if (o.endpoints.length === 0)
    throw new GatewayError("E_CLUSTER_CONFIG", "core.cluster.etcd.endpoints is empty");
  if ((o.certFile === undefined) !== (o.keyFile === undefined))
    throw new GatewayError(
      "E_CLUSTER_CONFIG",
      "core.cluster.etcd.cert_file and key_file go together",
    );
  const scheme = o.caFile === undefined ? "http" : "https";
  // gRPC sends the endpoint's host as the TLS server name, and Node refuses an IP address
  // there: members listed by address are reached by the name their certificates carry.
  const byAddress = o.endpoints.filter((e) => isIP(hostOf(e)) !== 0);
  if (scheme === "https" && o.serverName === undefined && byAddress.length > 0)
    throw new GatewayError(
      "E_CLUSTER_CONFIG",
      `core.cluster.etcd.endpoints ${byAddress.join(", ")} are IP addresses: over TLS, set core.cluster.etcd.server_name to the name the members' certificates carry`,
    );
  const credentials =
    o.caFile === undefined
      ? undefined
      : {
          rootCertificate: await readPem(o.caFile, "ca_file"),
          ...(o.certFile && o.keyFile
            ? {
                certChain: await readPem(o.certFile, "cert_file"),
                privateKey: await readPem(o.keyFile, "key_file"),
              }
            : {}),
        };
  return new Etcd3({
    hosts: o.endpoints.map((e) => `${scheme}://${e}`),
    ...(credentials ? { credentials } : {}),
    dialTimeout: o.timeoutMs,
    // gRPC backs off up to 2 minutes between attempts to reach a member that went away, and
    // until it tries again every call to it fails at once: a restarted member would stay unused
    // (unusable, with one endpoint) for that long.
    // A member cut off without a word (a network partition, a frozen VM) leaves the watch
    // stream open and silent: the host's view would stop following the region while writes
    // went on through other members. Pings bound how long that goes unnoticed; the watch then
    // reconnects, to another member if this one stays away, and resumes.
    grpcOptions: {
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 2000,
      "grpc.keepalive_time_ms": o.keepaliveMs ?? 10_000,
      "grpc.keepalive_timeout_ms": o.timeoutMs,
      ...(scheme === "https" && o.serverName !== undefined
        ? { "grpc.ssl_target_name_override": o.serverName }
        : {}),
    },
    // The library's default waits up to 30 s between watch reconnects; a host should see the
    // region's changes again within seconds of etcd coming back. etcd3 types this slot as an
    // IBackoff but calls it as a factory (its own default is an ExponentialBackoff too).
    faultHandling: {
      watchBackoff: new ExponentialBackoff({
        initialDelay: 100,
        maxDelay: 2000,
      }) as unknown as IBackoff<unknown>,
    },
    // Streams (the watch) live as long as the store; every other call is bounded, per attempt:
    // the client tries up to three members in turn (its default retry policy).
    defaultCallOptions: (context) =>
      context.isStream ? {} : { deadline: Date.now() + o.timeoutMs },
  });
}
