/**
 * The admin API on `core.admin.address:port` (plain HTTP; the default address is loopback and
 * the host firewall keeps the port local), or on a Unix socket (mode 0600) instead:
 * `GET /metrics` (Prometheus), the dashboard at `/` (dashboard.ts), and dstack-gateway's admin
 * prpc at `/prpc/<call>` or `/prpc/Admin.<call>` (calls.ts). Every request is authenticated
 * first (auth.ts); missing or wrong credentials are 401 (`E_ADMIN_UNAUTHORIZED`) and nothing of
 * the request is read or acted on. Errors are JSON `{ "error", "code" }` as on the RPC port.
 */
import { chmod, lstat, unlink } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import { rpcError, sendJson, statusFor } from "../rpc/http.js";
import { type AdminAuth, authenticate, refuseCrossSite } from "./auth.js";
import { CALLS, type CallContext } from "./calls.js";
import { DASHBOARD_HEADERS, renderDashboard } from "./dashboard.js";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.js";
import { allow, requestObject } from "./request.js";
import type { AdminSources } from "./sources.js";

export type { AdminSources, InstanceControl } from "./sources.js";

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
    const url = new URL(req.url ?? "/", "http://admin.invalid");
    try {
      refuseCrossSite(req);
      await authenticate(req, this.#opts.auth);
      if (url.pathname === "/metrics") {
        allow(req, res, ["GET"]);
        const text = await renderMetrics(await this.#opts.sources.view());
        res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE });
        res.end(text);
        return;
      }
      if (url.pathname === "/" || url.pathname === "/index.html") {
        allow(req, res, ["GET"]);
        res.writeHead(200, DASHBOARD_HEADERS);
        res.end(await this.#dashboard());
        return;
      }
      const name = METHOD.exec(url.pathname)?.[1];
      // Own keys only: "constructor" and the like are not calls.
      const call = name !== undefined && Object.hasOwn(CALLS, name) ? CALLS[name] : undefined;
      if (!call) {
        throw rpcError(
          "E_RPC_UNKNOWN_METHOD",
          `unknown admin path ${JSON.stringify(url.pathname)}`,
        );
      }
      allow(req, res, call.methods);
      let read = false;
      const context: CallContext = {
        req,
        res,
        sources: this.#opts.sources,
        urls: this.#opts.urls,
        log: this.#opts.log,
        request: (maxBytes) => {
          if (read) throw new Error("invariant: an admin call reads its request once");
          read = true;
          return requestObject(req, url, maxBytes);
        },
      };
      sendJson(res, 200, await call.run(context));
    } catch (error) {
      this.#fail(req, res, error);
    }
  }

  async #dashboard(): Promise<string> {
    const { sources } = this.#opts;
    return renderDashboard({
      view: await sources.view(),
      version: sources.version ?? "unknown",
      ...(sources.region ? { node: sources.region.name } : {}),
      nodes: sources.region?.nodes() ?? [],
      errors: sources.recentErrors?.list() ?? [],
    });
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
    if (code === "E_ADMIN_UNAUTHORIZED") {
      // The dashboard asks a browser for Basic credentials (the token as the password); a
      // Bearer challenge would make it show the JSON refusal instead.
      const path = new URL(req.url ?? "/", "http://admin.invalid").pathname;
      const dashboard = path === "/" || path === "/index.html";
      res.setHeader(
        "www-authenticate",
        dashboard ? 'Basic realm="gateway admin", charset="UTF-8"' : 'Bearer realm="gateway admin"',
      );
    }
    // An oversized body is left unread: close rather than parse its rest as the next request.
    sendJson(res, status, { error: message, code }, code === "E_RPC_BODY_TOO_LARGE");
  }
}
