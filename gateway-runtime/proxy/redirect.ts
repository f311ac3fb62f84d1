import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { listenOn } from "../listen/index.js";

const HOST = /^[a-z0-9.-]{1,253}$/;

/**
 * Plain HTTP on port 80: every request gets a permanent redirect to the same host and path on
 * https (308 keeps the method). Bounded header and request times; no keep-alive.
 */
export function startRedirect(opts: {
  address: string;
  port: number;
  /** A handed-over listening socket (listen/activation.ts) used instead of binding `port`. */
  fd?: number | undefined;
  httpsPort: number;
  timeoutMs: number;
}): Promise<Server> {
  const server = createServer((req, res) => {
    const host = (req.headers.host ?? "").toLowerCase().replace(/:\d+$/, "").replace(/\.$/, "");
    if (!HOST.test(host)) {
      res
        .writeHead(400, { "content-type": "text/plain", connection: "close" })
        .end("missing or bad Host header\n");
      return;
    }
    const port = opts.httpsPort === 443 ? "" : `:${opts.httpsPort}`;
    const path = req.url?.startsWith("/") ? req.url : "/";
    res
      .writeHead(308, {
        location: `https://${host}${port}${path}`,
        "content-length": 0,
        connection: "close",
      })
      .end();
  });
  server.headersTimeout = opts.timeoutMs;
  server.requestTimeout = opts.timeoutMs;
  server.keepAliveTimeout = 0;
  server.maxHeadersCount = 100;
  return listenOn(server, { fd: opts.fd, port: opts.port, host: opts.address }).then(() => server);
}

export function boundPort(server: { address(): AddressInfo | string | null }): number {
  const a = server.address();
  return typeof a === "object" && a ? a.port : 0;
}
