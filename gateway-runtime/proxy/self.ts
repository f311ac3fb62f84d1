/**
 * The gateway's own names under the base domain, as dstack's gateway has them: `health.<base>`
 * answers `GET /` and `GET /health` with 200 (for load balancers' monitors and rollout health
 * gates), 503 while an operator has this node draining (so a health-checked front door takes
 * it out), and `gateway.<base>` answers `GET /health` and serves `/.dstack/index` and
 * `/.dstack/acme-info` (this node's ACME account, in dstack's `AcmeInfoResponse` shape). No app
 * can take these names: app ids are hex, and neither label is.
 */
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import type { SelfName } from "./route.js";

/**
 * Whether this node is draining (Admin.SetNodeStatus "down"): set by registration, which follows
 * the region's statuses, and read by the health name, in this process or a proxy worker's.
 */
export class DrainingFlag {
  #value = false;
  readonly #listeners = new Set<(draining: boolean) => void>();

  get value(): boolean {
    return this.#value;
  }

  set(draining: boolean): void {
    if (draining === this.#value) return;
    this.#value = draining;
    for (const listener of this.#listeners) listener(draining);
  }

  onChange(listener: (draining: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

export interface SelfServiceOptions {
  /** `core.certbot.account_url`, when the Pulumi program made the account. */
  readonly accountUrl: string | undefined;
  /** `core.certbot.workdir`: an account the gateway made itself is in `account.json` there. */
  readonly workdir: string;
  /** Absent: never draining. */
  readonly draining?: DrainingFlag | undefined;
}

/** dstack's `AcmeInfoResponse`. This gateway is not in a TEE, so there are no quotes. */
interface AcmeInfo {
  account_uri: string;
  quoted_hist_keys: never[];
  account_quote: string;
  account_attestation: string;
}

async function accountUri(opts: SelfServiceOptions): Promise<string> {
  if (opts.accountUrl !== undefined) return opts.accountUrl;
  try {
    const saved = JSON.parse(await readFile(join(opts.workdir, "account.json"), "utf8"));
    return typeof saved?.url === "string" ? saved.url : "";
  } catch {
    return "";
  }
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  const text = body === undefined ? "" : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    "content-type": body === undefined ? "text/plain; charset=utf-8" : "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

/** Serves the own names on TLS connections the proxy has terminated. */
export class SelfService {
  readonly #opts: SelfServiceOptions;
  readonly #servers: Record<SelfName, ReturnType<typeof createServer>>;

  constructor(opts: SelfServiceOptions) {
    this.#opts = opts;
    const make = (name: SelfName) => {
      const server = createServer((req, res) => void this.#answer(name, req, res));
      // Bounds like the admin API's: a client that trickles cannot hold a connection long.
      server.headersTimeout = 10_000;
      server.requestTimeout = 10_000;
      server.keepAliveTimeout = 5_000;
      return server;
    };
    this.#servers = { health: make("health"), gateway: make("gateway") };
  }

  /** Hands one terminated connection to the name's HTTP server. */
  serve(name: SelfName, tls: TLSSocket): void {
    this.#servers[name].emit("connection", tls);
  }

  /** Ends the keep-alive connections it holds. */
  close(): void {
    for (const server of Object.values(this.#servers)) server.closeAllConnections();
  }

  async #answer(name: SelfName, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405);
    const path = new URL(req.url ?? "/", "https://self.invalid").pathname;
    if (path === "/health" || (name === "health" && path === "/"))
      return send(res, name === "health" && this.#opts.draining?.value ? 503 : 200);
    if (name === "health") return send(res, 404);
    if (path === "/.dstack/index") {
      return send(res, 200, { type: "dstack gateway", paths: ["/index", "/acme-info"] });
    }
    if (path === "/.dstack/acme-info") {
      const info: AcmeInfo = {
        account_uri: await accountUri(this.#opts),
        quoted_hist_keys: [],
        account_quote: "",
        account_attestation: "",
      };
      return send(res, 200, info);
    }
    return send(res, 404);
  }
}
