/**
 * HTTP plumbing of the RPC server (and of the admin API, which speaks the same prpc JSON): bounded body reading, JSON answers, and the one table that
 * turns error codes into HTTP statuses. Every error answer is `{ "error": <reason>, "code": <code> }`
 * (dstack answers `{ "error": … }`; the extra field is ignored by its clients).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { GatewayError } from "../errors.js";

export type RpcErrorCode =
  | "E_RPC_UNKNOWN_METHOD"
  | "E_RPC_METHOD_NOT_ALLOWED"
  | "E_RPC_NO_CLIENT_CERT"
  | "E_RPC_CERT_UNTRUSTED"
  | "E_RPC_UNSUPPORTED_ENCODING"
  | "E_RPC_BODY_TOO_LARGE"
  | "E_RPC_ABORTED"
  | "E_RPC_BAD_JSON"
  | "E_RPC_BAD_REQUEST"
  | "E_RPC_WEAK_KEY"
  | "E_RPC_INTERNAL";

export function rpcError(code: RpcErrorCode, message: string): GatewayError<RpcErrorCode> {
  return new GatewayError(code, message);
}

const STATUS: Readonly<Record<string, number>> = {
  E_RPC_UNKNOWN_METHOD: 404,
  E_RPC_METHOD_NOT_ALLOWED: 405,
  E_RPC_NO_CLIENT_CERT: 401,
  E_RPC_CERT_UNTRUSTED: 401,
  E_RPC_UNSUPPORTED_ENCODING: 415,
  E_RPC_BODY_TOO_LARGE: 413,
  E_RPC_ABORTED: 400,
  E_RPC_BAD_JSON: 400,
  E_RPC_BAD_REQUEST: 400,
  E_RPC_WEAK_KEY: 400,
  E_AUTH_DENIED: 403,
  E_AUTH_UNAVAILABLE: 503,
  E_ATTEST_COLLATERAL: 503,
  E_ATTEST_CONFIG: 500,
  E_REGISTRY_BAD_REQUEST: 400,
  E_REGISTRY_KEY_IN_USE: 409,
  E_REGISTRY_APP_MISMATCH: 409,
  E_REGISTRY_FULL: 503,
  E_REGISTRY_UNKNOWN_INSTANCE: 404,
  E_CLUSTER_UNAVAILABLE: 503,
  E_CLUSTER_CONFLICT: 503,
  E_NODE_DRAINING: 503,
  E_NODE_UNKNOWN: 404,
  E_ADMIN_UNAUTHORIZED: 401,
  E_ADMIN_CROSS_SITE: 403,
  E_ADMIN_CERTBOT_DISABLED: 409,
  E_CERT_RATE_LIMITED: 429,
  E_CERT_DNS: 502,
  E_CERT_DNS_PROPAGATION: 504,
  E_CERT_ACME: 502,
  E_CERT_CA_REJECTED: 502,
  E_CERT_TIMEOUT: 504,
  E_CERT_CLUSTER: 503,
};

/** HTTP status for an error code: the table, 401 for other attestation failures, else 500. */
export function statusFor(code: string): number {
  return STATUS[code] ?? (code.startsWith("E_ATTEST_") ? 401 : 500);
}

/** Writes a JSON answer; `close` asks Node to close the connection after it. */
export function sendJson(res: ServerResponse, status: number, body: unknown, close = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...(close ? { connection: "close" } : {}),
  });
  res.end(text);
}

/**
 * Reads the whole request body, at most `limit` bytes. A larger declared or actual length is
 * `E_RPC_BODY_TOO_LARGE`; the caller answers and closes the connection (the rest is unread).
 * A body that ends early (the connection closed or timed out) is `E_RPC_ABORTED`.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) {
    return Promise.reject(
      rpcError("E_RPC_BODY_TOO_LARGE", `request body of ${declared} bytes exceeds ${limit} bytes`),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(rpcError("E_RPC_BODY_TOO_LARGE", `request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    // The client went away (or a server bound cut it off) mid-body: its doing, not ours, so
    // a stable client-side code rather than an internal error in the log.
    const onError = (err: Error) => {
      cleanup();
      reject(rpcError("E_RPC_ABORTED", `request body incomplete: ${err.message}`));
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}
