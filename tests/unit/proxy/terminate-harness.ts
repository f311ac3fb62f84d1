// What the TLS termination tests share: openssl-made certificates, a terminator on temporary
// files, a :443 stand-in that terminates and echoes, clients (Node and openssl s_client).
import { spawn } from "node:child_process";
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import type { Writable } from "node:stream";
import tls from "node:tls";
import { afterAll, afterEach, beforeAll, vi } from "vitest";
import { until as poll } from "../../../testkit/poll.js";
import {
  type TerminateError,
  type TerminatorOptions,
  TlsTerminator,
} from "../../../gateway-runtime/proxy/terminate.js";
import type { AlpnMode } from "../../../gateway-runtime/proxy/tls-options.js";
import { createCa, issueLeaf, type LeafCert, type TestCa } from "../../../testkit/certs.js";

export type Outcome = { ok: true; socket: tls.TLSSocket } | { ok: false; error: TerminateError };
export interface Gateway {
  readonly port: number;
  readonly outcomes: Promise<Outcome>[];
}
export interface Client {
  readonly socket: tls.TLSSocket;
  readonly sessions: Buffer[];
}

// Set by useTerminatorHarness's beforeAll; importers see them through live bindings.
export let ca: TestCa;
export let leaf1: LeafCert;
export let leaf2: LeafCert;
export let rsa: LeafCert;
export let expired: LeafCert;
/** Run (last first) after every test. */
export const cleanups: Array<() => void> = [];
export const SNI = "a1b2.app.test.example";
export const PARTIAL_HELLO = Buffer.from([
  0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03,
]);

/** Registers the certificates (made once per file) and the per-test cleanup. */
export function useTerminatorHarness(): void {
  beforeAll(() => {
    ca = createCa();
    [leaf1, leaf2, expired] = [issueLeaf(ca), issueLeaf(ca), issueLeaf(ca, { days: -1 })];
    rsa = issueLeaf(ca, { key: "rsa" });
  });
  afterAll(() => ca.cleanup());
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
    vi.restoreAllMocks();
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
/** `until` of `testkit/poll.ts`, with this file's argument order and 10 ms polls. */
export const until = (check: () => boolean, what: string, ms = 3000): Promise<boolean> =>
  poll(what, check, ms, { everyMs: 10 });

/** Writes the pair the way a renewer does: temp file, then rename, certificate first. */
export function place(files: readonly [string, string], pair: Pem): void {
  for (const [file, text] of [
    [files[0], pair.certPem] as const,
    [files[1], pair.keyPem] as const,
  ]) {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  }
}

export type Pem = Pick<LeafCert, "certPem" | "keyPem">;
export const pem = (certPem: string, key: Pick<LeafCert, "keyPem">): Pem => ({
  certPem,
  keyPem: key.keyPem,
});

export async function terminator(
  leaf: Pem = leaf1,
  opts: Partial<TerminatorOptions> = {},
): Promise<{ t: TlsTerminator; files: [string, string] }> {
  const dir = mkdtempSync(join(ca.dir, "live-"));
  const files: [string, string] = [join(dir, "cert.pem"), join(dir, "key.pem")];
  place(files, leaf);
  const t = await TlsTerminator.create({
    certFile: files[0],
    keyFile: files[1],
    handshakeTimeoutMs: 2000,
    watch: false,
    ...opts,
  });
  cleanups.push(() => t.close());
  return { t, files };
}

/**
 * A :443 stand-in: reads the first chunk itself, then terminates and echoes. Cleanup destroys
 * the raw socket only while no TLS socket wraps it (see TlsTerminator.terminate).
 */
export async function gateway(
  t: TlsTerminator,
  mode: AlpnMode = "http1",
  abort = false,
): Promise<Gateway> {
  const outcomes: Promise<Outcome>[] = [];
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    open.add(socket);
    socket.once("data", (first: Buffer) => {
      open.delete(socket);
      const done = t.terminate(socket, first, mode).then(
        (secure): Outcome => {
          open.add(secure);
          secure.on("error", () => {});
          secure.pipe(secure);
          return { ok: true, socket: secure };
        },
        (error: TerminateError): Outcome => ({ ok: false, error }),
      );
      outcomes.push(done);
      if (abort) socket.destroy(); // the caller gives up (shutdown) while the handshake runs
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    server.close();
    for (const socket of open) socket.destroy();
  });
  return { port: (server.address() as net.AddressInfo).port, outcomes };
}

export async function outcome(gw: Gateway, index: number): Promise<Outcome> {
  await until(() => gw.outcomes.length > index, `connection ${index} reaches terminate`);
  return within(gw.outcomes[index] as Promise<Outcome>, 5000, `terminate ${index}`);
}

export function connect(gw: Gateway, opts: tls.ConnectionOptions = {}): Promise<Client> {
  const sessions: Buffer[] = [];
  const socket = tls.connect({
    host: "127.0.0.1",
    port: gw.port,
    servername: SNI,
    ca: ca.certPem,
    ...opts,
  });
  cleanups.push(() => socket.destroy());
  socket.on("session", (session: Buffer) => sessions.push(session));
  const secure = new Promise<Client>((resolve, reject) => {
    socket.once("secureConnect", () => resolve({ socket, sessions }));
    socket.once("error", reject);
  });
  return within(secure, 5000, "client handshake");
}

export async function connectError(gw: Gateway, opts: tls.ConnectionOptions): Promise<string> {
  const error = await connect(gw, opts).then(
    () => new Error("handshake succeeded"),
    (e: Error) => e,
  );
  return (error as Error & { code?: string }).code ?? error.message;
}

export async function echo(c: Client, text: string): Promise<string> {
  const reply = new Promise<string>((resolve) => c.socket.once("data", (d) => resolve(String(d))));
  c.socket.write(text);
  return within(reply, 3000, `echo of ${text}`);
}

/** Runs `openssl s_client` against `gw`; `script` writes to its stdin, else stdin is closed. */
export function sClient(
  gw: Gateway,
  extra: string[],
  script?: (stdin: Writable, out: () => string) => Promise<void>,
) {
  const args = [
    "s_client",
    "-connect",
    `127.0.0.1:${gw.port}`,
    "-servername",
    SNI,
    "-CAfile",
    ca.certFile,
  ];
  const child = spawn("openssl", [...args, ...extra], { stdio: "pipe" });
  cleanups.push(() => child.kill("SIGKILL"));
  const chunks: Buffer[] = [];
  const out = () => Buffer.concat(chunks).toString();
  for (const stream of [child.stdout, child.stderr])
    stream.on("data", (d: Buffer) => chunks.push(d));
  child.stdin.on("error", () => {}); // it may exit before we are done writing
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  if (script) void script(child.stdin, out);
  else child.stdin.end();
  return within(exited, 10_000, "openssl s_client exits").then(out);
}

/** Pairs no terminator may load, with the reason it gives. */
export const BAD_PAIRS: ReadonlyArray<[string, () => Pem, RegExp]> = [
  [
    "a garbage certificate",
    () => pem("-----BEGIN CERTIFICATE-----\nAAAA\n", leaf1),
    /not a PEM X.509/,
  ],
  ["a garbage key", () => pem(leaf1.certPem, { keyPem: "junk" }), /private key is unparsable/],
  ["the key of another certificate", () => pem(leaf2.certPem, leaf1), /does not match/],
  ["an expired certificate", () => expired, /expired at/],
];
