/**
 * The registration RPC server on `port` (ARCHITECTURE.md "Registration RPC"), speaking dstack-gateway's prpc JSON:
 * `POST /prpc/RegisterCvm?json` (also spelled `Gateway.RegisterCvm` and the legacy
 * `Tproxy.RegisterCvm`; a JSON Content-Type works instead of `?json`), `Info` (GET or POST,
 * no client certificate needed) and dstack's `GET /health` (plain "OK"). HTTPS with the gateway's own certificate; clients authenticate
 * with an RA-TLS certificate, requested but not enforced by TLS (`rejectUnauthorized: false`)
 * so that a refusal is a 401 with a reason rather than a handshake alert. Session tickets are
 * off: a ticket would carry the client's RA-TLS certificate, which with its quote is large.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { constants } from "node:crypto";
import type { DetailedPeerCertificate, TLSSocket } from "node:tls";
import { type CertInfo, readPair } from "../certs/pair.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import {
  type InfoResponse,
  type RegisterCvmRequest,
  type RegisterCvmResponse,
  registerCvmRequestSchema,
} from "./wire.js";
import { isLowOrderWgKey, isWgKey } from "../keys/wireguard.js";
import { readBody, rpcError, sendJson, statusFor } from "./http.js";
import { listenOn } from "../listen/index.js";

/** The client certificate a CVM presented: its own (DER), then the rest of the chain it sent. */
export interface PeerCertificate {
  readonly der: Buffer;
  /** Certificates the client sent after its own, leaf first. */
  readonly chain: readonly Buffer[];
}

async function loadPair(o: Pick<RpcServerOptions, "certFile" | "keyFile">) {
  try {
    return await readPair(o.certFile, o.keyFile);
  } catch (error) {
    throw new GatewayError("E_CERT_LOAD", `rpc certificate: ${(error as Error).message}`);
  }
}

/** What the server calls; `RegistrationService` implements it. */
export interface RegistrationHandler {
  register(
    cert: PeerCertificate,
    req: RegisterCvmRequest,
  ): Promise<{ readonly response: RegisterCvmResponse }>;
  info(): InfoResponse;
}

export interface RpcServerOptions {
  readonly handler: RegistrationHandler;
  /** The gateway's certificate chain and key (PEM files). */
  readonly certFile: string;
  readonly keyFile: string;
  /**
   * CA bundle (PEM) the TLS layer verifies client certificates against; when set, an
   * unverified client is refused with 401 before attestation runs. Leave unset in TDX mode.
   */
  readonly clientCaPem?: string | undefined;
  /** @default "0.0.0.0" */
  readonly address?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** A handed-over listening socket (listen/activation.ts), used instead of binding `port`. */
  readonly fd?: number | undefined;
  /** Idle keep-alive connections close after this (`keep_alive`). @default 10_000 */
  readonly keepAliveMs?: number;
  /** TLS handshake bound. @default 10_000 */
  readonly handshakeTimeoutMs?: number;
  /** Bound on receiving a request's headers (slow-loris). @default 10_000 */
  readonly headersTimeoutMs?: number;
  /** Bound on receiving a whole request. @default 30_000 */
  readonly requestTimeoutMs?: number;
  /** @default 65_536 */
  readonly maxBodyBytes?: number;
  readonly log?: Logger;
}

const METHOD = /^\/prpc\/(?:(?:Gateway|Tproxy)\.)?([A-Za-z]+)$/;

export class RpcServer {
  readonly #o: RpcServerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #maxBody: number;
  #served: CertInfo;

  private constructor(options: RpcServerOptions, cert: string, key: string, info: CertInfo) {
    this.#served = info;
    this.#o = options;
    this.#maxBody = options.maxBodyBytes ?? 65_536;
    const headersTimeout = options.headersTimeoutMs ?? 10_000;
    const requestTimeout = Math.max(options.requestTimeoutMs ?? 30_000, headersTimeout);
    this.#server = createServer(
      {
        cert,
        key,
        ...(options.clientCaPem === undefined ? {} : { ca: options.clientCaPem }),
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: "TLSv1.2",
        secureOptions: constants.SSL_OP_NO_TICKET,
        handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
        headersTimeout,
        requestTimeout,
        keepAliveTimeout: options.keepAliveMs ?? 10_000,
        // How often Node checks the two bounds above; its default (30 s) would let them slip.
        connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 4))),
      },
      (req, res) => this.#handle(req, res),
    );
    // A backstop for sockets that stall after their request (e.g. a response never read).
    this.#server.setTimeout(requestTimeout * 2);
    this.#server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    this.#server.on("tlsClientError", (err: Error) => {
      this.#o.log?.debug({ err: err.message }, "rpc tls handshake failed");
    });
  }

  /** Reads and checks the certificate files (as the TLS proxy does), then starts listening. */
  static async start(options: RpcServerOptions): Promise<RpcServer> {
    const { cert, key, info } = await loadPair(options);
    const server = new RpcServer(options, cert, key, info);
    await listenOn(server.#server, {
      fd: options.fd,
      port: options.port,
      host: options.address ?? "0.0.0.0",
    });
    return server;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Re-reads the certificate files; new connections use them. A bad pair keeps the old one (E_CERT_LOAD). */
  async reloadCertificate(): Promise<void> {
    const { cert, key, info } = await loadPair(this.#o);
    this.#server.setSecureContext({
      cert,
      key,
      ...(this.#o.clientCaPem === undefined ? {} : { ca: this.#o.clientCaPem }),
    });
    this.#served = info;
  }

  /** The certificate new connections get (for the metrics). */
  certificate(): CertInfo {
    return this.#served;
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.#dispatch(req, res).catch((err: unknown) => this.#fail(req, res, err));
  }

  async #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://rpc.invalid");
    if (url.pathname === "/health") {
      // dstack-gateway's liveness route on this port (web_routes.rs: `#[get("/health")]`
      // answering "OK"; Rocket answers HEAD for a GET route): no client certificate needed.
      if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed(res, "GET, HEAD");
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "content-length": 2 });
      res.end(req.method === "HEAD" ? undefined : "OK");
      return;
    }
    const method = METHOD.exec(url.pathname)?.[1];
    if (method === "Info") {
      if (req.method !== "GET" && req.method !== "POST") throw notAllowed(res, "GET, POST");
      sendJson(res, 200, this.#o.handler.info());
      return;
    }
    if (method !== "RegisterCvm") {
      throw rpcError("E_RPC_UNKNOWN_METHOD", `unknown method ${JSON.stringify(url.pathname)}`);
    }
    if (req.method !== "POST") throw notAllowed(res, "POST");
    const socket = req.socket as TLSSocket;
    // Not getPeerX509Certificate(): after it, getPeerCertificate(true) on the same socket
    // lacks the sent chain (Node 20). This one answers {} when there is no client certificate.
    const peer: Partial<DetailedPeerCertificate> = socket.getPeerCertificate(true);
    if (!peer.raw) {
      throw rpcError("E_RPC_NO_CLIENT_CERT", "a client certificate (RA-TLS) is required");
    }
    if (this.#o.clientCaPem !== undefined && !socket.authorized) {
      throw rpcError(
        "E_RPC_CERT_UNTRUSTED",
        `client certificate is not trusted: ${String(socket.authorizationError ?? "unverified")}`,
      );
    }
    const json =
      url.searchParams.has("json") ||
      /^application\/json\b/i.test(req.headers["content-type"] ?? "");
    if (!json) {
      throw rpcError(
        "E_RPC_UNSUPPORTED_ENCODING",
        "only JSON requests are served: add ?json or Content-Type: application/json",
      );
    }
    const request = parseRequest(await readBody(req, this.#maxBody));
    const { response } = await this.#o.handler.register(
      { der: peer.raw, chain: peerChain(peer as DetailedPeerCertificate) },
      request,
    );
    sendJson(res, 200, response);
  }

  #fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const known = err instanceof GatewayError;
    const code = known ? err.code : "E_RPC_INTERNAL";
    const status = statusFor(code);
    const message = known && status !== 500 ? err.message : "internal error";
    const fields = { code, status, method: req.method, url: req.url, err: (err as Error)?.message };
    if (status >= 500) this.#o.log?.error(fields, "rpc request failed");
    else this.#o.log?.debug(fields, "rpc request refused");
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // Node discards a small unread body itself; one too large or still arriving: close.
    const close = code === "E_RPC_BODY_TOO_LARGE" || !req.complete;
    sendJson(res, status, { error: message, code }, close);
  }
}

function notAllowed(res: ServerResponse, allow: string): GatewayError {
  res.setHeader("allow", allow);
  return rpcError("E_RPC_METHOD_NOT_ALLOWED", `use ${allow}`);
}

function parseRequest(body: Buffer): RegisterCvmRequest {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (cause) {
    throw rpcError("E_RPC_BAD_JSON", `request body is not JSON: ${(cause as Error).message}`);
  }
  const parsed = registerCvmRequestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    throw rpcError(
      "E_RPC_BAD_REQUEST",
      `bad RegisterCvm request: ${where}${issue?.message ?? "invalid"}`,
    );
  }
  if (!isWgKey(parsed.data.client_public_key)) {
    throw rpcError("E_RPC_BAD_REQUEST", "client_public_key is not a base64 WireGuard public key");
  }
  if (isLowOrderWgKey(parsed.data.client_public_key)) {
    throw rpcError(
      "E_RPC_WEAK_KEY",
      "client_public_key is a point of small order: no WireGuard handshake can complete with it",
    );
  }
  return parsed.data;
}

/** The DER certificates the client sent after its own, in order. */
function peerChain(leaf: DetailedPeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<object>([leaf]);
  let cert = leaf;
  while (cert.issuerCertificate && !seen.has(cert.issuerCertificate) && out.length < 8) {
    cert = cert.issuerCertificate;
    seen.add(cert);
    out.push(cert.raw);
  }
  return out;
}
