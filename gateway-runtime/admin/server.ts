/**
 * The admin API on `core.admin.address:port` (plain HTTP; the default address is loopback and
 * the host firewall keeps the port local). `GET /metrics` (Prometheus), and dstack-gateway's
 * admin prpc: `Status`, `GetInfo` (GET or POST), `RenewCert` and `ReloadCert` (POST), the port
 * policy calls, and in a region `SetNodeStatus` (POST) and `GetNodeStatuses`; each
 * also spelled `Admin.<name>`; or on a Unix socket (mode 0600) instead. Every request is
 * authenticated first (auth.ts); missing or wrong credentials are 401 (`E_ADMIN_UNAUTHORIZED`)
 * and nothing of the request is read or acted on. Errors are JSON `{ "error", "code" }` as on
 * the RPC port.
 */
import { chmod, lstat, unlink } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import type { CheckOutcome } from "../certs/index.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import { type AdminAuth, authenticate } from "./auth.js";
import { readBody, rpcError, sendJson, statusFor } from "../rpc/http.js";
import { type PortPolicy, portPolicySchema } from "../rpc/wire.js";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.js";
import { type RegionNodes, setNodeStatusRequest } from "./nodes.js";
import { getInfoResponse, nodeStatusesResponse, statusResponse } from "./status.js";
import type { AdminView } from "./view.js";

export interface AdminSources {
  /** The counters and state as they are now (asks the proxy workers when there are some). */
  view(): Promise<AdminView>;
  /** Every part serving the certificate re-reads its files. */
  reloadCertificate(): Promise<void>;
  /** Renews now whatever the expiry; absent when `core.certbot.enabled` is false. */
  renewCertificate?: () => Promise<CheckOutcome>;
  /** The instances' port policies and their overrides (the registration service). */
  portPolicies?: PortPolicies;
  /** The region's gateway nodes; absent without `core.cluster.enabled`. */
  region?: RegionNodes;
}

/** What the port policy calls need of the registration service. */
export interface PortPolicies {
  portPolicyView(instanceId: string): unknown;
  overridePortPolicy(instanceId: string, policy: PortPolicy | undefined): Promise<void>;
}

export interface AdminServerOptions {
  /** TCP `address:port` (port 0 picks a free one), or a Unix socket path. */
  readonly listen:
    | { readonly address: string; readonly port: number }
    | { readonly socket: string };
  /** From `resolveAdminAuth`: who may call. */
  readonly auth: AdminAuth;
  /** This node's URL and its bootnode's (`core.sync`), for `Status`. */
  readonly urls: { readonly url: string; readonly bootnode: string };
  readonly sources: AdminSources;
  readonly log: Logger;
}

const METHOD = /^\/prpc\/(?:Admin\.)?([A-Za-z]+)$/;
const MAX_BODY_BYTES = 4096;
/** A policy may list many ports. */
const POLICY_BODY_BYTES = 256 * 1024;

/** Removes a socket left by a process that did not close it; any other file is an error. */
async function clearStaleSocket(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => undefined);
  if (stat === undefined) return;
  if (!stat.isSocket()) {
    throw new GatewayError(
      "E_ADMIN_AUTH_CONFIG",
      `core.admin.socket ${path} exists and is not a socket`,
    );
  }
  await unlink(path);
}

export class AdminServer {
  readonly #server: Server;
  readonly #opts: AdminServerOptions;

  private constructor(opts: AdminServerOptions) {
    this.#opts = opts;
    this.#server = createServer(
      {
        headersTimeout: 10_000,
        requestTimeout: 30_000,
        keepAliveTimeout: 5_000,
        // How often Node checks the two bounds above; its default (30 s) let a slow client
        // live up to 40 s on its headers and 60 s on its body.
        connectionsCheckingInterval: 1_000,
      },
      (req, res) => void this.#handle(req, res),
    );
  }

  static async start(opts: AdminServerOptions): Promise<AdminServer> {
    const admin = new AdminServer(opts);
    const { listen } = opts;
    if ("socket" in listen) await clearStaleSocket(listen.socket);
    await new Promise<void>((resolve, reject) => {
      admin.#server.once("error", reject);
      const where =
        "socket" in listen ? { path: listen.socket } : { host: listen.address, port: listen.port };
      admin.#server.listen(where, () => {
        admin.#server.off("error", reject);
        resolve();
      });
    });
    // Owner only: the socket is the admin API, whoever can connect to it is an operator.
    if ("socket" in listen) await chmod(listen.socket, 0o600);
    opts.log.info({ address: admin.address(), auth: opts.auth.kind }, "admin API listening");
    return admin;
  }

  /** The TCP address, or the socket path. */
  address(): AddressInfo | string {
    return this.#server.address() as AddressInfo | string;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await authenticate(req, this.#opts.auth);
      const url = new URL(req.url ?? "/", "http://admin.invalid");
      if (url.pathname === "/metrics") {
        allow(req, res, "GET");
        const text = await renderMetrics(await this.#opts.sources.view());
        res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE });
        res.end(text);
        return;
      }
      const method = METHOD.exec(url.pathname)?.[1];
      switch (method) {
        case "Status":
          allow(req, res, "GET", "POST");
          return sendJson(
            res,
            200,
            statusResponse(
              await this.#opts.sources.view(),
              this.#opts.urls,
              this.#opts.sources.region,
            ),
          );
        case "SetNodeStatus":
          allow(req, res, "POST");
          return sendJson(res, 200, await this.#setNodeStatus(req));
        case "GetNodeStatuses":
          allow(req, res, "GET", "POST");
          return sendJson(res, 200, nodeStatusesResponse(this.#region()));
        case "GetInfo": {
          allow(req, res, "GET", "POST");
          const id = req.method === "GET" ? url.searchParams.get("id") : await instanceIdOf(req);
          if (!id) throw rpcError("E_RPC_BAD_REQUEST", 'GetInfo needs an instance "id"');
          return sendJson(res, 200, getInfoResponse(await this.#opts.sources.view(), id));
        }
        case "ReloadCert":
          allow(req, res, "POST");
          this.#opts.log.info("admin: reloading the certificate");
          await this.#opts.sources.reloadCertificate();
          return sendJson(res, 200, {});
        case "RenewCert":
          allow(req, res, "POST");
          return sendJson(res, 200, await this.#renew());
        case "GetInstancePortPolicy":
        case "SetInstancePortPolicy":
        case "ClearInstancePortPolicy":
          return sendJson(res, 200, await this.#portPolicy(method, req, res, url));
        default:
          throw rpcError(
            "E_RPC_UNKNOWN_METHOD",
            `unknown admin path ${JSON.stringify(url.pathname)}`,
          );
      }
    } catch (error) {
      this.#fail(req, res, error);
    }
  }

  /** dstack's three port policy calls; the answer of Set and Clear is `{}` (protobuf Empty). */
  async #portPolicy(
    method: string,
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<unknown> {
    const policies = this.#opts.sources.portPolicies;
    if (!policies) throw rpcError("E_RPC_UNKNOWN_METHOD", "registration is not running here");
    if (method === "GetInstancePortPolicy") allow(req, res, "GET", "POST");
    else allow(req, res, "POST");
    const body =
      req.method === "GET"
        ? { instance_id: url.searchParams.get("instance_id") ?? undefined }
        : await jsonBody(req, POLICY_BODY_BYTES);
    const request = portPolicyRequest.safeParse(body);
    if (!request.success) {
      throw rpcError("E_RPC_BAD_REQUEST", `${method}: ${request.error.issues[0]?.message}`);
    }
    const { instance_id: id, policy } = request.data;
    if (method === "GetInstancePortPolicy") return policies.portPolicyView(id);
    if (method === "SetInstancePortPolicy") {
      if (!policy) throw rpcError("E_RPC_BAD_REQUEST", 'SetInstancePortPolicy needs a "policy"');
      this.#opts.log.info({ instanceId: id }, "admin: overriding a port policy");
      await policies.overridePortPolicy(id, policy);
    } else {
      await policies.overridePortPolicy(id, undefined);
    }
    return {};
  }

  #region(): RegionNodes {
    const region = this.#opts.sources.region;
    if (!region) throw rpcError("E_RPC_UNKNOWN_METHOD", "core.cluster is not enabled here");
    return region;
  }

  /** dstack's SetNodeStatus: `{id, status}` ("up" or "down"), or `{name, status}`; answers `{}`. */
  async #setNodeStatus(req: IncomingMessage): Promise<unknown> {
    const region = this.#region();
    const request = setNodeStatusRequest.safeParse(await jsonBody(req));
    if (!request.success) {
      throw rpcError("E_RPC_BAD_REQUEST", `SetNodeStatus: ${request.error.issues[0]?.message}`);
    }
    const { status, ...target } = request.data;
    const name = region.resolve(target as { id: number } | { name: string });
    this.#opts.log.info({ node: name, status }, "admin: setting a gateway node's status");
    await region.setStatus(name, status);
    return {};
  }

  async #renew(): Promise<{ renewed: boolean }> {
    const renew = this.#opts.sources.renewCertificate;
    if (!renew) {
      throw new GatewayError(
        "E_ADMIN_CERTBOT_DISABLED",
        "core.certbot.enabled is false: nothing renews",
      );
    }
    this.#opts.log.info("admin: renewing the certificate now");
    const outcome = await renew();
    if (outcome.action === "failed" || outcome.action === "rate-limited") throw outcome.error;
    return { renewed: outcome.action === "renewed" };
  }

  #fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    const code = error instanceof GatewayError ? error.code : "E_ADMIN_INTERNAL";
    const status = statusFor(code);
    const message = error instanceof Error ? error.message : String(error);
    const fields = { code, status, method: req.method, url: req.url, err: message };
    if (status >= 500) this.#opts.log.error(fields, "admin request failed");
    else this.#opts.log.info(fields, "admin request refused");
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (code === "E_ADMIN_UNAUTHORIZED")
      res.setHeader("www-authenticate", 'Bearer realm="gateway admin"');
    // An oversized body is left unread: close rather than parse its rest as the next request.
    sendJson(res, status, { error: message, code }, code === "E_RPC_BODY_TOO_LARGE");
  }
}

/** Refuses any other HTTP method with 405 and an Allow header. */
function allow(req: IncomingMessage, res: ServerResponse, ...methods: string[]): void {
  if (methods.includes(req.method ?? "")) return;
  res.setHeader("allow", methods.join(", "));
  throw rpcError(
    "E_RPC_METHOD_NOT_ALLOWED",
    `${req.method} not allowed here; use ${methods.join(" or ")}`,
  );
}

/** A JSON request body; an empty one is `{}`. */
async function jsonBody(req: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<unknown> {
  const body = (await readBody(req, maxBytes)).toString("utf8");
  if (body.trim() === "") return {};
  try {
    return JSON.parse(body);
  } catch {
    throw rpcError("E_RPC_BAD_JSON", "request body is not JSON");
  }
}

/** dstack's port policy requests: `{instance_id}`, and `{instance_id, policy}` for Set. */
const portPolicyRequest = z.object({
  instance_id: z.string({ error: '"instance_id" must be a string' }).min(1, {
    error: '"instance_id" is required',
  }),
  policy: portPolicySchema.optional(),
});

async function instanceIdOf(req: IncomingMessage): Promise<string | undefined> {
  const parsed = await jsonBody(req);
  const id = (parsed as { id?: unknown } | null)?.id;
  if (id !== undefined && typeof id !== "string")
    throw rpcError("E_RPC_BAD_REQUEST", '"id" must be a string');
  return id;
}
