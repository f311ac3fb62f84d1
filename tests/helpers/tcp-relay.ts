/**
 * A TCP relay on 127.0.0.1 to one target, which a test can cut: every connection through it is
 * destroyed and new ones are refused. A client of etcd through it loses etcd as a crashed or
 * partitioned host does (closing an etcd3 client is no such test: gRPC lets its open streams,
 * the lease keepalives among them, go on after `close()`).
 */
import { connect, createServer, type Socket } from "node:net";

export interface TcpRelay {
  /** `127.0.0.1:<port>` */
  readonly address: string;
  /** Destroys every connection and stops listening. */
  cut(): Promise<void>;
}

export async function startTcpRelay(target: { host: string; port: number }): Promise<TcpRelay> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    track(client);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    async cut() {
      const closed = new Promise((r) => server.close(r));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
