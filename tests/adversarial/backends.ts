/**
 * The registered instance's services, on its tunnel address: port 80 (where terminated
 * connections go) answers HTTP, port 443 (passthrough) keeps every byte stream it receives, by
 * the case number stamped in its ClientHello, so a test can tell exactly which cases were
 * dialled and whether their bytes arrived intact.
 */
import { Buffer } from "node:buffer";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { stampOf } from "./hello.js";

export interface Backends {
  /** TCP connections accepted on port 80 and on port 443. */
  accepted(): { terminate: number; passthrough: number };
  /** What passthrough connections sent before closing, by case number. */
  readonly received: Map<number, Buffer>;
  /** Every stream passthrough connections sent before closing, in order (stamped or not). */
  readonly streams: Buffer[];
  close(): Promise<void>;
}

function listen(server: Server, ip: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: ip, port, backlog: 4096 }, () => resolve());
  });
}

export async function startBackends(ip: string): Promise<Backends> {
  const counts = { terminate: 0, passthrough: 0 };
  const received = new Map<number, Buffer>();
  const streams: Buffer[] = [];
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
  };
  const http = createHttpServer((req, res) => {
    req.resume();
    req.on("end", () => res.end(`ok ${req.url}`));
  });
  http.on("connection", (socket: Socket) => {
    counts.terminate += 1;
    track(socket);
  });
  const raw = createServer((socket) => {
    counts.passthrough += 1;
    track(socket);
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", () => {
      const bytes = Buffer.concat(chunks);
      streams.push(bytes);
      const n = stampOf(bytes);
      if (n !== undefined) received.set(n, bytes);
      socket.end();
    });
  });
  await listen(http, ip, 80);
  await listen(raw, ip, 443);
  return {
    accepted: () => ({ ...counts }),
    received,
    streams,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(
        [http, raw].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      );
    },
  };
}
