/**
 * The soak's client primitives, each bounded in time: a TLS connection to the gateway, one
 * HTTP/1.1 request on it (keep-alive, read whole, optionally slowly), its close (a FIN, or a
 * reset: destroyed with a response still arriving, so the kernel answers with RST), the
 * ClientHello a real client sends (for the connections that stop mid-handshake), and HTTP/2
 * sessions and requests. Raw HTTP/1.1 rather than `https.request`: the soak decides when a
 * connection opens, how many requests it carries and how it ends, which an Agent would decide.
 */
import { once } from "node:events";
import { type ClientHttp2Session, connect as h2Connect, constants } from "node:http2";
import { createServer, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect, type TLSSocket } from "node:tls";

export const HOST = "127.0.0.1";
export const REQUEST_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 5000;
/** A slow reader pauses this long after each chunk. */
const SLOW_PAUSE_MS = 50;

/** A TLS connection to `port` on loopback, resolved once its handshake is done. */
export function openTls(opts: ConnectionOptions & { port: number }): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: HOST, ...opts });
    // Later errors surface as 'close' in the request that is waiting; never unhandled.
    socket.on("error", () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("handshake timed out"));
    }, REQUEST_TIMEOUT_MS);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("close", () => {
      clearTimeout(timer);
      reject(new Error("closed during the handshake"));
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * `GET path` on a keep-alive connection; resolves with the body's length once it is all
 * there, rejects on anything but a 200, a close, or after the timeout. `onFirstBytes` runs
 * once the first chunk arrives (a reset destroys the connection there).
 */
export function get(
  socket: TLSSocket,
  host: string,
  path: string,
  opts: { slow?: boolean; onFirstBytes?: () => void } = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    let bodyLength = -1;
    let received = 0;
    let first = true;
    const done = (error?: Error) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      if (error) reject(error);
      else resolve(bodyLength);
    };
    const onClose = () => done(new Error(`closed after ${received} body bytes of ${path}`));
    const onData = (chunk: Buffer) => {
      if (first) {
        first = false;
        opts.onFirstBytes?.();
      }
      if (bodyLength < 0) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end === -1) return;
        const text = head.subarray(0, end).toString("latin1");
        if (!text.startsWith("HTTP/1.1 200 ")) {
          done(new Error(`${path}: ${text.split("\r\n")[0]}`));
          return;
        }
        const length = /\r\ncontent-length: *(\d+)/i.exec(text);
        if (!length) {
          done(new Error(`${path}: no content-length`));
          return;
        }
        bodyLength = Number(length[1]);
        received = head.length - end - 4;
      } else {
        received += chunk.length;
      }
      if (received >= bodyLength) done();
      else if (opts.slow) {
        socket.pause();
        setTimeout(() => socket.resume(), SLOW_PAUSE_MS);
      }
    };
    const timer = setTimeout(
      () => done(new Error(`${path}: no answer in time`)),
      REQUEST_TIMEOUT_MS,
    );
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

/** Ends with a FIN (TLS close_notify first) and waits, bounded, until both sides are closed. */
export async function closeGracefully(socket: Socket): Promise<void> {
  if (socket.destroyed) return;
  const closed = once(socket, "close");
  socket.end();
  const timer = setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS);
  await closed;
  clearTimeout(timer);
}

/** Requests `path` and destroys the connection as the answer starts to arrive. */
export async function reset(socket: TLSSocket, host: string, path: string): Promise<void> {
  await get(socket, host, path, { onFirstBytes: () => socket.destroy() }).catch(() => {});
}

/** The ClientHello a Node client sends for `servername` (ALPN as given): its first TLS record. */
export async function captureHello(servername: string, alpn?: string[]): Promise<Buffer> {
  const server = createServer();
  server.listen(0, HOST);
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  try {
    const hello = new Promise<Buffer>((resolve, reject) => {
      server.once("connection", (s: Socket) => {
        let buffer = Buffer.alloc(0);
        s.on("data", (chunk: Buffer) => {
          buffer = Buffer.concat([buffer, chunk]);
          if (buffer.length >= 5 && buffer.length >= 5 + buffer.readUInt16BE(3)) {
            s.destroy();
            resolve(buffer.subarray(0, 5 + buffer.readUInt16BE(3)));
          }
        });
        s.on("error", reject);
      });
    });
    const client = tlsConnect({
      host: HOST,
      port,
      servername,
      rejectUnauthorized: false,
      ...(alpn ? { ALPNProtocols: alpn } : {}),
    });
    client.on("error", () => {});
    const bytes = await hello;
    client.destroy();
    return bytes;
  } finally {
    server.close();
  }
}

/** An HTTP/2 session through the gateway (ALPN h2), resolved once it is connected. */
export function openH2(opts: ConnectionOptions & { port: number }): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = h2Connect(`https://${opts.servername}:${opts.port}`, {
      createConnection: () => tlsConnect({ host: HOST, ...opts, ALPNProtocols: ["h2"] }),
    });
    session.on("error", () => {});
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error("h2: no session in time"));
    }, REQUEST_TIMEOUT_MS);
    session.once("connect", () => {
      clearTimeout(timer);
      resolve(session);
    });
    session.once("close", () => {
      clearTimeout(timer);
      reject(new Error("h2: closed while connecting"));
    });
  });
}

/** One HTTP/2 GET; resolves with the body's length, rejects on anything but a whole 200. */
export function h2Get(session: ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":path": path });
    let status = 0;
    let bytes = 0;
    const timer = setTimeout(() => {
      req.close(constants.NGHTTP2_CANCEL);
      reject(new Error(`h2 ${path}: no answer in time`));
    }, REQUEST_TIMEOUT_MS);
    req.on("response", (headers) => {
      status = Number(headers[":status"]);
    });
    req.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on("end", () => {
      clearTimeout(timer);
      if (status === 200) resolve(bytes);
      else reject(new Error(`h2 ${path}: status ${status}`));
    });
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}

/** Closes an HTTP/2 session (GOAWAY, then the connection), bounded. */
export async function closeH2(session: ClientHttp2Session): Promise<void> {
  if (session.destroyed) return;
  const closed = once(session, "close");
  session.close();
  const timer = setTimeout(() => session.destroy(), CLOSE_TIMEOUT_MS);
  await closed;
  clearTimeout(timer);
}
