/**
 * A real ClientHello: the first flight Node's TLS client sends for a name, caught by a plain
 * TCP server on loopback. For tests that send a hello by hand (behind a PROXY header, to a
 * proxy that only peeks at it).
 */
import { createServer } from "node:net";
import { connect as tlsConnect } from "node:tls";

export async function clientHello(servername: string): Promise<Buffer> {
  const server = createServer();
  const first = new Promise<Buffer>((resolve) =>
    server.once("connection", (s) =>
      s.once("data", (d: Buffer) => {
        resolve(d);
        s.destroy();
      }),
    ),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  const client = tlsConnect({ port, host: "127.0.0.1", servername });
  client.on("error", () => {});
  const hello = await first;
  client.destroy();
  await new Promise((r) => server.close(r));
  return hello;
}
