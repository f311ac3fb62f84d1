/**
 * The etcd client of a gateway host: endpoints as `host:port`, TLS when a CA is given (client
 * certificate and key too when etcd asks for them). Every unary request is bounded by
 * `timeoutMs`; the watch reconnects after a short backoff, resuming where it stopped.
 */
import { readFile } from "node:fs/promises";
import { ExponentialBackoff, type IBackoff } from "cockatiel";
import { Etcd3 } from "etcd3";
import { GatewayError } from "../errors.js";

export interface EtcdClientOptions {
  /** `host:port` of each etcd member. */
  readonly endpoints: readonly string[];
  /** PEM CA etcd's server certificates chain to; without it the connection is plain. */
  readonly caFile?: string | undefined;
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

export async function connectEtcd(o: EtcdClientOptions): Promise<Etcd3> {
  if (o.endpoints.length === 0)
    throw new GatewayError("E_CLUSTER_CONFIG", "core.cluster.etcd.endpoints is empty");
  if ((o.certFile === undefined) !== (o.keyFile === undefined))
    throw new GatewayError(
      "E_CLUSTER_CONFIG",
      "core.cluster.etcd.cert_file and key_file go together",
    );
  const scheme = o.caFile === undefined ? "http" : "https";
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
