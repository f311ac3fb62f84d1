/** A node:https client for the RPC tests: presents a client certificate, trusts the test CA. */
import { type Agent, request } from "node:https";
import { connect, type TLSSocket } from "node:tls";
import type { TestCert } from "../../../testkit/ra-tls.js";

export const SERVERNAME = "rpc.app.test.example";

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** The body parsed as JSON, or undefined. */
  readonly json: unknown;
}

export interface CallOptions {
  readonly method?: string;
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
  /** Client certificate; its chain (intermediates) follows it in the PEM. */
  readonly cert?: TestCert;
  readonly chain?: readonly TestCert[];
  readonly agent?: Agent;
}

export function call(
  port: number,
  serverCa: string,
  path: string,
  o: CallOptions = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: o.method ?? "POST",
        servername: SERVERNAME,
        ca: serverCa,
        ...(o.cert
          ? { cert: [o.cert, ...(o.chain ?? [])].map((c) => c.pem).join(""), key: o.cert.keyPem }
          : {}),
        agent: o.agent ?? false,
        headers: o.headers ?? {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString();
          let json: unknown;
          try {
            json = JSON.parse(body);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

/** A raw TLS connection with a client certificate, for slow-loris style tests. */
export function rawTls(port: number, serverCa: string, cert: TestCert): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: "127.0.0.1",
      port,
      servername: SERVERNAME,
      ca: serverCa,
      cert: cert.pem,
      key: cert.keyPem,
    });
    socket.once("secureConnect", () => resolve(socket));
    socket.once("error", reject);
  });
}
