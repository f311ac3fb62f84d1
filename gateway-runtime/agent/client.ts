/**
 * The agent's side of the registration RPC: `POST <gateway>/prpc/Gateway.RegisterCvm?json` over
 * mutual TLS (our client certificate, the gateway's certificate checked against `ca` or the
 * system roots). Every failure names the gateway URL; a refusal also names the HTTP status and
 * the gateway's JSON error code (`{ "error", "code" }`; dstack sends `error` only).
 */
import { request } from "node:https";
import { GatewayError } from "../errors.js";

export type AgentRpcErrorCode =
  /** No answer: connection refused, DNS, timeout, the gateway's certificate not trusted. */
  | "E_AGENT_GATEWAY_UNREACHABLE"
  /** The gateway answered with a non-2xx status. */
  | "E_AGENT_REGISTER_REFUSED"
  /** A 2xx answer that is not the JSON we expect. */
  | "E_AGENT_BAD_RESPONSE";

export class AgentRpcError extends GatewayError<AgentRpcErrorCode> {
  /** HTTP status, when the gateway answered. */
  readonly status: number | undefined;
  /** The gateway's own error code (`E_ATTEST_UNTRUSTED`, ...), when it sent one. */
  readonly gatewayCode: string | undefined;

  constructor(
    code: AgentRpcErrorCode,
    message: string,
    extra: { status?: number; gatewayCode?: string; cause?: unknown } = {},
  ) {
    super(code, message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "AgentRpcError";
    this.status = extra.status;
    this.gatewayCode = extra.gatewayCode;
  }
}

export interface GatewayClientOptions {
  /** `https://host:port`, optionally with a path prefix. */
  readonly gateway: string;
  /** Our RA-TLS client certificate chain and key (PEM). */
  readonly cert: string;
  readonly key: string;
  /** CAs the gateway's certificate must chain to (PEM); undefined: the system roots. */
  readonly ca?: string | undefined;
  /** TLS server name to send and verify, when it differs from the URL's host. */
  readonly servername?: string | undefined;
  /** Bound on one request, connect to last byte. */
  readonly timeoutMs: number;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** The RegisterCvm URL for a gateway base URL (dstack appends `/prpc`). */
export function registerUrl(gateway: string): URL {
  const base = new URL(gateway);
  if (base.protocol !== "https:") throw new TypeError(`gateway URL must be https: ${gateway}`);
  const path = base.pathname.replace(/\/+$/, "");
  return new URL(`${path}/prpc/Gateway.RegisterCvm?json`, base.origin);
}

/** Why an unsuccessful answer was refused: `401 E_ATTEST_UNTRUSTED: <reason>`. */
function refusal(status: number, text: string): { detail: string; gatewayCode?: string } {
  try {
    const body = JSON.parse(text) as { error?: unknown; code?: unknown };
    const code = typeof body.code === "string" ? body.code : undefined;
    const reason = typeof body.error === "string" ? body.error : text.slice(0, 300);
    return {
      detail: `${status}${code ? ` ${code}` : ""}: ${reason}`,
      ...(code ? { gatewayCode: code } : {}),
    };
  } catch {
    return { detail: `${status}: ${text.slice(0, 300) || "(empty body)"}` };
  }
}

const TLS_TRUST = /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS_CERT_ALTNAME/;

/** Sends RegisterCvm and resolves with the parsed JSON of a 2xx answer. */
export function registerCvm(opts: GatewayClientOptions, publicKey: string): Promise<unknown> {
  const url = registerUrl(opts.gateway);
  const where = `gateway ${opts.gateway}`;
  const body = JSON.stringify({ client_public_key: publicKey });
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: "POST",
      agent: false,
      cert: opts.cert,
      key: opts.key,
      ...(opts.ca === undefined ? {} : { ca: opts.ca }),
      ...(opts.servername === undefined ? {} : { servername: opts.servername }),
      signal: AbortSignal.timeout(opts.timeoutMs),
      headers: {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      },
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      const code = err.code ?? err.name;
      const why =
        err.name === "TimeoutError" || code === "ABORT_ERR"
          ? `no answer within ${opts.timeoutMs} ms`
          : TLS_TRUST.test(code)
            ? `its TLS certificate is not trusted (${code}: ${err.message}); check --ca and --servername`
            : `${code}: ${err.message}`;
      reject(new AgentRpcError("E_AGENT_GATEWAY_UNREACHABLE", `${where}: ${why}`, { cause: err }));
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          res.destroy();
          reject(
            new AgentRpcError(
              "E_AGENT_BAD_RESPONSE",
              `${where}: RegisterCvm answer exceeds ${MAX_RESPONSE_BYTES} bytes`,
            ),
          );
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        const text = Buffer.concat(chunks).toString("utf8");
        if (status < 200 || status > 299) {
          const { detail, gatewayCode } = refusal(status, text);
          reject(
            new AgentRpcError(
              "E_AGENT_REGISTER_REFUSED",
              `${where} refused RegisterCvm: HTTP ${detail}`,
              { status, ...(gatewayCode ? { gatewayCode } : {}) },
            ),
          );
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(
            new AgentRpcError(
              "E_AGENT_BAD_RESPONSE",
              `${where}: RegisterCvm answered HTTP ${status} with a body that is not JSON`,
              { status },
            ),
          );
        }
      });
      res.on("error", (err) =>
        reject(
          new AgentRpcError("E_AGENT_GATEWAY_UNREACHABLE", `${where}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
    });
    req.end(body);
  });
}
