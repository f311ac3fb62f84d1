/**
 * The probe's client side: one TLS connection to a given address with a given SNI (so a host
 * can be probed by its address whatever DNS says), then one HTTP/1.1 or HTTP/2 request on it.
 * Verification is done here rather than by `tls.connect`, so a failure says what was wrong
 * (chain, name, expiry) instead of ending the connection with a bare alert.
 */
import { connect as h2Connect } from "node:http2";
import { request } from "node:http";
import {
  checkServerIdentity,
  connect,
  type PeerCertificate,
  rootCertificates,
  type TLSSocket,
} from "node:tls";

export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface TlsOptions {
  readonly address: Address;
  readonly servername: string;
  /** Extra trusted CAs (PEM), beside Node's bundled roots (a private ACME CA such as pebble). */
  readonly ca: readonly string[];
  readonly alpn?: readonly string[] | undefined;
  readonly timeoutMs: number;
}

export interface TlsResult {
  readonly socket: TLSSocket;
  readonly cert: PeerCertificate;
  /** Why the chain or the name is not trusted; undefined when both are. */
  readonly untrusted: string | undefined;
  readonly alpn: string | false;
}

export function formatAddress(a: Address): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** `host:port` or `[v6]:port`; `defaultPort` when the port is left out. */
export function parseAddress(text: string, defaultPort: number): Address {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const plain = /^([^:]+)(?::(\d+))?$/.exec(text);
  const m = bracketed ?? plain;
  if (m === null) throw new Error(`not an address (host:port): ${text}`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port in ${text}`);
  return { host: m[1] as string, port };
}

export function tlsConnect(o: TlsOptions): Promise<TlsResult> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: o.address.host,
      port: o.address.port,
      servername: o.servername,
      ca: [...rootCertificates, ...o.ca],
      rejectUnauthorized: false,
      ...(o.alpn === undefined ? {} : { ALPNProtocols: [...o.alpn] }),
    });
    const timer = setTimeout(
      () => socket.destroy(new Error(`no TLS handshake within ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const cert = socket.getPeerCertificate(true);
      const identity = socket.authorized ? checkServerIdentity(o.servername, cert) : undefined;
      const untrusted = socket.authorized
        ? identity?.message
        : `chain not trusted: ${String(socket.authorizationError)}`;
      resolve({ socket, cert, untrusted, alpn: socket.alpnProtocol ?? false });
    });
  });
}

/** One HTTP/1.1 GET on an open TLS socket; resolves to the status. */
export function http1Get(
  socket: TLSSocket,
  host: string,
  path: string,
  timeoutMs: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        createConnection: () => socket,
        host,
        path,
        method: "GET",
        headers: { connection: "close" },
        timeout: timeoutMs,
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** One HTTP/2 GET on an open TLS socket that negotiated h2; resolves to the status. */
export function http2Get(
  socket: TLSSocket,
  authority: string,
  path: string,
  timeoutMs: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = h2Connect(`https://${authority}`, { createConnection: () => socket });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (f: () => void) => {
      clearTimeout(timer);
      session.close();
      f();
    };
    session.on("error", (e) => done(() => reject(e)));
    const stream = session.request({ ":method": "GET", ":path": path });
    stream.on("response", (headers) => {
      stream.resume();
      done(() => resolve(Number(headers[":status"] ?? 0)));
    });
    stream.on("error", (e) => done(() => reject(e)));
    stream.end();
  });
}
