// Loopback plumbing for the bridge tests: linked socket pairs, bounded waits, floods.
// The bridge over real sockets on 127.0.0.1: a test client, the gateway's two sockets, a test
// backend. Gateway-side sockets keep Node's default allowHalfOpen (false), as a gateway's
// listener and backend connects would; the test peers are half-open so they can answer late.
import { Buffer } from "node:buffer";
import { once } from "node:events";
import net from "node:net";
import tls from "node:tls";
import fc from "fast-check";
import { afterAll, beforeAll, expect } from "vitest";
import { until as poll } from "../../../testkit/poll.js";
import type { BridgeResult, BridgeTimeouts } from "../../../gateway-runtime/proxy/bridge.js";
import { ReusedReads } from "../../../gateway-runtime/proxy/read-buffers.js";

export const HOST = "127.0.0.1";
export const LONG: BridgeTimeouts = {
  idleMs: 10_000,
  writeMs: 10_000,
  shutdownMs: 10_000,
  totalMs: 30_000,
  dataTimeouts: true,
};
export const timeouts = (change: Partial<BridgeTimeouts>): BridgeTimeouts => ({
  ...LONG,
  ...change,
});
export const ignore = (): void => {};

/** Both ends of one bridged connection. */
export interface Link {
  /** The test's client. */
  readonly client: net.Socket;
  /** The client's TCP socket (the same as `client` unless TLS). */
  readonly clientTcp: net.Socket;
  /** Accepted by the gateway's listener: the bridge's `client`. */
  readonly gwClient: net.Socket;
  /** The gateway's connection to the backend: the bridge's `backend`. */
  readonly gwBackend: net.Socket;
  /** Accepted by the test backend. */
  readonly backend: net.Socket;
  /** `gwBackend`'s reads, when linked with `reuseReads`. */
  readonly reads?: ReusedReads;
}

/** Accepted sockets, handed to whoever waits for the peer port they came from. */
export class Accepted {
  private readonly ready = new Map<number, net.Socket>();
  private readonly waiting = new Map<number, (socket: net.Socket) => void>();

  readonly put = (socket: net.Socket): void => {
    const port = socket.remotePort ?? -1;
    const waiter = this.waiting.get(port);
    this.waiting.delete(port);
    if (waiter === undefined) this.ready.set(port, socket);
    else waiter(socket);
  };

  take(port: number): Promise<net.Socket> {
    const socket = this.ready.get(port);
    this.ready.delete(port);
    if (socket !== undefined) return Promise.resolve(socket);
    return new Promise((resolve) => this.waiting.set(port, resolve));
  }
}

/** A gateway listener (plain or TLS) and a backend server on loopback, port 0. */
export class Loopback {
  private readonly fronts = new Accepted();
  private readonly backs = new Accepted();
  private front!: net.Server;
  private back!: net.Server;
  private readonly peers = new Set<net.Socket>();

  constructor(private readonly tlsFiles?: { key: Buffer; cert: Buffer }) {}

  async start(): Promise<this> {
    this.front = this.tlsFiles
      ? tls.createServer({ ...this.tlsFiles }).on("secureConnection", this.fronts.put)
      : net.createServer(this.fronts.put);
    this.back = net.createServer({ allowHalfOpen: true }, this.backs.put);
    for (const server of [this.front, this.back]) {
      server.listen(0, HOST);
      await once(server, "listening");
    }
    return this;
  }

  async link(opts: { reuseReads?: boolean } = {}): Promise<Link> {
    const clientTcp = net.connect({ host: HOST, port: portOf(this.front), allowHalfOpen: true });
    clientTcp.on("error", ignore);
    this.peers.add(clientTcp);
    await within(once(clientTcp, "connect"), 2000, "client connect");
    const client = this.tlsFiles
      ? tls.connect({ socket: clientTcp, ca: this.tlsFiles.cert, servername: "bridge.test" })
      : clientTcp;
    client.on("error", ignore);
    if (client !== clientTcp) await within(once(client, "secureConnect"), 2000, "handshake");
    const gwClient = await within(this.fronts.take(clientTcp.localPort ?? -1), 2000, "accept");
    const reads = opts.reuseReads ? new ReusedReads() : undefined;
    const gwBackend = net.connect({
      host: HOST,
      port: portOf(this.back),
      ...(reads ? { onread: reads.onread } : {}),
    });
    await within(once(gwBackend, "connect"), 2000, "backend connect");
    const backend = await within(this.backs.take(gwBackend.localPort ?? -1), 2000, "accept");
    backend.on("error", ignore);
    this.peers.add(backend);
    for (const socket of [clientTcp, backend]) socket.on("close", () => this.peers.delete(socket));
    return { client, clientTcp, gwClient, gwBackend, backend, ...(reads ? { reads } : {}) };
  }

  /** Closes the servers; test peers a failed test left open go first. */
  async stop(): Promise<void> {
    for (const socket of this.peers) socket.destroy();
    for (const server of [this.front, this.back]) {
      server.close();
      await once(server, "close");
    }
  }
}

/** A plain Loopback for the calling test file: started before its tests, stopped after. */
export function useLoopback(): Pick<Loopback, "link"> {
  let loop: Loopback | undefined;
  beforeAll(async () => {
    loop = await new Loopback().start();
  });
  afterAll(async () => {
    await loop?.stop();
  });
  return {
    link: (opts) => {
      if (!loop) throw new Error("the loopback starts in beforeAll");
      return loop.link(opts);
    },
  };
}

export function portOf(server: net.Server): number {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("not listening on TCP");
  return address.port;
}

/** Rejects when `promise` takes longer than `ms`: every wait in these tests is bounded. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** `until` of `testkit/poll.ts`, with this file's argument order and 5 ms polls. */
export const until = (check: () => boolean, ms: number, what: string): Promise<boolean> =>
  poll(what, check, ms, { everyMs: 5 });

/** Every byte `socket` reads until its peer ends. */
export function collect(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    socket.once("end", () => resolve(Buffer.concat(chunks)));
    socket.once("error", reject);
  });
}

/** Resolves when the other end of `socket` is gone (FIN or RST seen). */
export function peerGone(socket: net.Socket): Promise<void> {
  if (socket.readableEnded || socket.destroyed) return Promise.resolve();
  socket.resume();
  return new Promise((resolve) => {
    socket.once("end", resolve);
    socket.once("close", resolve);
  });
}

/** Writes `chunk` over and over, respecting backpressure, until `socket` closes. */
export function flood(socket: net.Socket, chunk: Buffer): void {
  const pump = (): void => {
    while (!socket.destroyed && socket.writable) {
      if (!socket.write(chunk)) return;
    }
  };
  socket.on("drain", pump);
  pump();
}

/** Writes one byte every `everyMs` until `socket` closes. */
export function trickle(socket: net.Socket, everyMs: number): NodeJS.Timeout {
  const ticker = setInterval(() => {
    if (socket.destroyed || !socket.writable) clearInterval(ticker);
    else socket.write("x");
  }, everyMs);
  return ticker;
}

export function destroyPeers(link: Link): void {
  link.client.destroy();
  link.clientTcp.destroy();
  link.backend.destroy();
}

/** Settles within `ms`, both gateway sockets destroyed. */
export async function settled(
  link: Link,
  done: Promise<BridgeResult>,
  ms = 3000,
): Promise<BridgeResult> {
  const result = await within(done, ms, "bridge settles");
  expect(link.gwClient.destroyed).toBe(true);
  expect(link.gwBackend.destroyed).toBe(true);
  return result;
}

/**
 * Property: with an echoing backend, random payloads written in random pieces come back
 * byte-exact and the bridge ends `closed` with both byte counts right. `link` makes a fresh
 * link per case, `start` runs the bridge on it.
 */
export async function assertEchoesExact(
  link: () => Promise<Link>,
  start: (link: Link) => Promise<BridgeResult>,
  numRuns: number,
): Promise<void> {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 300_000, size: "max" }),
      fc.integer({ min: 1, max: 70_000 }),
      async (payload, chunkSize) => {
        const l = await link();
        l.backend.on("data", (chunk: Buffer) => l.backend.write(chunk));
        l.backend.on("end", () => l.backend.end());
        const done = start(l);
        const echoed = collect(l.client);
        for (let at = 0; at < payload.length; at += chunkSize) {
          l.client.write(payload.subarray(at, at + chunkSize));
        }
        l.client.end();
        const got = await within(echoed, 5000, "echo");
        expect(got.length).toBe(payload.length);
        expect(got.equals(payload)).toBe(true);
        expect(await settled(l, done)).toEqual({
          end: "closed",
          bytesToBackend: payload.length,
          bytesToClient: payload.length,
        });
        destroyPeers(l);
      },
    ),
    { numRuns },
  );
}
