/**
 * A renewal swaps the certificate under a running TLS listener (the proxy's TlsTerminator) with
 * no connection dropped: 100 open TLS connections keep echoing, new ones get the new serial.
 */
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CertificateManager } from "../../../gateway-runtime/certs/index.js";
import { TlsTerminator } from "../../../gateway-runtime/proxy/terminate.js";
import { openFdCount, waitForFds } from "../../helpers/fds.js";
import { BASE, type CertLab, startCertLab } from "./harness.js";

const CONNECTIONS = 100;
let lab: CertLab;
let manager: CertificateManager;
let terminator: TlsTerminator;
let server: Server;
let port: number;
let rootPem: string;
const accepted = new Set<Socket>();

beforeAll(async () => {
  lab = await startCertLab();
  rootPem = await lab.pebble.rootPem();
  manager = lab.manager(lab.workdir());
  await manager.start();
  expect((await manager.checkNow()).action).toBe("renewed");
  terminator = await TlsTerminator.create({
    certFile: manager.certFile,
    keyFile: manager.keyFile,
    handshakeTimeoutMs: 5000,
    watch: false,
  });
  manager.onCertificate(() => terminator.reload());
  // A TLS echo server: read the first bytes as the proxy does, then hand them to terminate().
  server = createServer((socket) => {
    accepted.add(socket);
    socket.on("close", () => accepted.delete(socket));
    socket.once("data", (initial: Buffer) => {
      terminator.terminate(socket, initial, "http1").then(
        (tls) => {
          tls.on("data", (d: Buffer) => tls.write(d));
          tls.on("end", () => tls.end());
          tls.on("error", () => tls.destroy());
        },
        () => undefined,
      );
    });
    socket.on("error", () => socket.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of accepted) s.destroy();
  server?.close();
  terminator?.close();
  await lab?.close();
});

function open(i: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: "127.0.0.1", servername: `app${i}.${BASE}`, ca: rootPem });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
  });
}

function echo(s: TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const timer = setTimeout(() => reject(new Error(`no echo of ${text}`)), 5000);
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) {
        clearTimeout(timer);
        s.off("data", onData);
        resolve(got);
      }
    };
    s.on("data", onData);
    s.write(text);
  });
}

describe("certificate swap under load", () => {
  it(`keeps ${CONNECTIONS} open TLS connections through a renewal; new ones get the new serial`, async () => {
    const fdsBefore = openFdCount();
    const oldSerial = terminator.current().serial;
    const clients = await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => open(i)));
    expect(clients.every((c) => c.getPeerX509Certificate()?.serialNumber === oldSerial)).toBe(true);
    expect(await Promise.all(clients.map((c, i) => echo(c, `before-${i}`)))).toEqual(
      clients.map((_, i) => `before-${i}`),
    );

    expect(await manager.checkNow({ force: true })).toEqual({
      action: "renewed",
      reason: "forced",
    });
    const newSerial = manager.status().serial;
    expect(newSerial).not.toBe(oldSerial);
    expect(terminator.current().serial).toBe(newSerial);

    expect(await Promise.all(clients.map((c, i) => echo(c, `after-${i}`)))).toEqual(
      clients.map((_, i) => `after-${i}`),
    );
    expect(clients.every((c) => !c.destroyed)).toBe(true);

    const fresh = await open(CONNECTIONS);
    expect(fresh.getPeerX509Certificate()?.serialNumber).toBe(newSerial);
    expect(await echo(fresh, "fresh")).toBe("fresh");

    for (const c of [...clients, fresh]) c.end();
    expect(await waitForFds(fdsBefore, 5, 5000)).toBeLessThanOrEqual(fdsBefore + 5);
  });
});
