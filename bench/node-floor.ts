/**
 * Bench-only reference, "node" in the tables: the least a Node proxy can do for the same
 * traffic, to tell Node's own cost from ours. No ClientHello parsing, no routing, no timeouts,
 * no accounting: a TLS server (what `tls.Server` does per connection) terminating to the backend's HTTP port and a `net.Server`
 * passing bytes to its TLS port, joined with `pipe()`, on the same TLS policy and ticket keys
 * as the gateway (`tls-options.ts`). A real gateway cannot be this small (it must route by
 * SNI before it knows whether to terminate); ours is measured against it to show how much of
 * the gap to HAProxy is Node's floor. Prints `{"term": N, "pass": N}` once listening.
 *
 *   node bench/.build/node-floor.mjs --cert F --key F --http-port N --tls-port N
 */
import { readFileSync } from "node:fs";
import { connect, createServer as createTcpServer, type Server, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { createSecureContext, TLSSocket } from "node:tls";
import { contextOptions, TicketKeyRing } from "../gateway-runtime/proxy/tls-options.js";
import { reportMemoryOnSignal, stopSignal } from "./lib/entry.js";

const HOST = "127.0.0.1";
const ROTATION_MS = 12 * 3600 * 1000;

const { values } = parseArgs({
  options: {
    cert: { type: "string" },
    key: { type: "string" },
    "http-port": { type: "string" },
    "tls-port": { type: "string" },
    "memory-file": { type: "string" },
  },
});
const { cert, key } = values;
const httpPort = Number(values["http-port"]);
const tlsPort = Number(values["tls-port"]);
if (!cert || !key || !(httpPort > 0) || !(tlsPort > 0)) {
  throw new Error("--cert, --key, --http-port and --tls-port are required");
}

/** Both ways with pipe(); either side closing or failing closes the other. */
function join(client: Socket, port: number): void {
  const backend = connect({ host: HOST, port, noDelay: true });
  client.pipe(backend).pipe(client);
  for (const [a, b] of [
    [client, backend],
    [backend, client],
  ] as const) {
    a.on("error", () => b.destroy());
    a.on("close", () => b.destroy());
  }
}

// What `tls.Server` does per connection, with a context of our own so the gateway's ticket
// policy (a fresh ticket after every resumption) can be attached to it.
const ring = new TicketKeyRing();
const context = createSecureContext({
  ...contextOptions(ROTATION_MS, ring.currentKeys()),
  cert: readFileSync(cert),
  key: readFileSync(key),
});
ring.attach(context);
const term = createTcpServer({ noDelay: true }, (socket) => {
  const secure = new TLSSocket(socket, {
    isServer: true,
    secureContext: context,
    ALPNProtocols: ["http/1.1"],
  });
  secure.on("error", () => secure.destroy());
  secure.once("secure", () => join(secure, httpPort));
});
const pass = createTcpServer({ noDelay: true }, (socket) => join(socket, tlsPort));

const listen = (server: Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: HOST, port: 0, backlog: 4096 }, () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });

reportMemoryOnSignal(values["memory-file"]);
const ports = { term: await listen(term), pass: await listen(pass) };
process.stdout.write(`${JSON.stringify(ports)}\n`);
await stopSignal();
process.exit(0);
