/**
 * One-shot clients of a real gateway's three ports (the adversarial suite's, the bench's soak),
 * each bounded in time: the registration RPC (HTTPS, optionally with a client certificate), the
 * admin API (HTTP), and a request through the proxy's terminating path.
 */
import { request as httpRequest, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import type { TestCa } from "./certs.js";
import type { TestCert } from "./ra-tls.js";

export interface Answer {
  readonly status: number;
  readonly text: string;
}

export interface HttpCall {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: OutgoingHttpHeaders;
  readonly body?: string | Buffer;
  /** @default 10_000 */
  readonly timeoutMs?: number;
}

/** Sends one request on a fresh connection; rejects on a network error or after the bound. */
function call(
  send: typeof httpRequest | typeof httpsRequest,
  options: RequestOptions,
  c: HttpCall,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = send(
      { ...options, method: c.method ?? "POST", path: c.path, headers: c.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.setTimeout(c.timeoutMs ?? 10_000, () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end(c.body);
  });
}

/** `POST /prpc/Gateway.RegisterCvm?json` (or `path`) on the RPC port, as `cert` if given. */
export function rpcRequest(port: number, c: HttpCall & { cert?: TestCert }): Promise<Answer> {
  return call(
    httpsRequest,
    {
      host: "127.0.0.1",
      port,
      rejectUnauthorized: false,
      ...(c.cert ? { cert: c.cert.pem, key: c.cert.keyPem } : {}),
    },
    { path: "/prpc/Gateway.RegisterCvm?json", ...c },
  );
}

/** The admin token of those gateways: the admin API refuses to start without one. */
export const ADMIN_TOKEN = "adversarial-suite-admin-token";

/** An admin request: with `c.headers` exactly those, otherwise carrying the token. */
export function adminRequest(port: number, c: HttpCall): Promise<Answer> {
  const headers = c.headers ?? { authorization: `Bearer ${ADMIN_TOKEN}` };
  return call(httpRequest, { host: "127.0.0.1", port }, { ...c, headers });
}

/** `GET /` through the proxy's terminating path for `serverName`. */
export function proxyRequest(
  port: number,
  serverName: string,
  ca: TestCa,
  timeoutMs = 10_000,
): Promise<Answer> {
  return call(
    httpsRequest,
    { host: "127.0.0.1", port, servername: serverName, ca: ca.certPem },
    { method: "GET", path: "/", headers: { host: serverName }, timeoutMs },
  );
}
