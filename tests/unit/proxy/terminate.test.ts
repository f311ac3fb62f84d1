// TLS termination over real loopback sockets with openssl-made certificates.
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import type { Writable } from "node:stream";
import tls from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  type TerminateError,
  type TerminatorOptions,
  TlsTerminator,
} from "../../../gateway-runtime/proxy/terminate.js";
import { type AlpnMode, TicketKeyRing } from "../../../gateway-runtime/proxy/tls-options.js";
import { createCa, issueLeaf, type LeafCert, type TestCa } from "../../helpers/certs.js";

type Outcome = { ok: true; socket: tls.TLSSocket } | { ok: false; error: TerminateError };
interface Gateway {
  readonly port: number;
  readonly outcomes: Promise<Outcome>[];
}
interface Client {
  readonly socket: tls.TLSSocket;
  readonly sessions: Buffer[];
}

let ca: TestCa;
let leaf1: LeafCert;
let leaf2: LeafCert;
let rsa: LeafCert;
let expired: LeafCert;
const cleanups: Array<() => void> = [];
const SNI = "a1b2.app.test.example";
const PARTIAL_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03]);

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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  for (const end = Date.now() + ms; !check(); await sleep(10)) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
  }
}

/** Writes the pair the way a renewer does: temp file, then rename, certificate first. */
function place(files: readonly [string, string], pair: Pem): void {
  for (const [file, text] of [
    [files[0], pair.certPem] as const,
    [files[1], pair.keyPem] as const,
  ]) {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  }
}

type Pem = Pick<LeafCert, "certPem" | "keyPem">;
const pem = (certPem: string, key: Pick<LeafCert, "keyPem">): Pem => ({
  certPem,
  keyPem: key.keyPem,
});

async function terminator(
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
async function gateway(
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

async function outcome(gw: Gateway, index: number): Promise<Outcome> {
  await until(() => gw.outcomes.length > index, `connection ${index} reaches terminate`);
  return within(gw.outcomes[index] as Promise<Outcome>, 5000, `terminate ${index}`);
}

function connect(gw: Gateway, opts: tls.ConnectionOptions = {}): Promise<Client> {
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

async function connectError(gw: Gateway, opts: tls.ConnectionOptions): Promise<string> {
  const error = await connect(gw, opts).then(
    () => new Error("handshake succeeded"),
    (e: Error) => e,
  );
  return (error as Error & { code?: string }).code ?? error.message;
}

async function echo(c: Client, text: string): Promise<string> {
  const reply = new Promise<string>((resolve) => c.socket.once("data", (d) => resolve(String(d))));
  c.socket.write(text);
  return within(reply, 3000, `echo of ${text}`);
}

/** Runs `openssl s_client` against `gw`; `script` writes to its stdin, else stdin is closed. */
function sClient(
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
const BAD_PAIRS: ReadonlyArray<[string, () => Pem, RegExp]> = [
  [
    "a garbage certificate",
    () => pem("-----BEGIN CERTIFICATE-----\nAAAA\n", leaf1),
    /not a PEM X.509/,
  ],
  ["a garbage key", () => pem(leaf1.certPem, { keyPem: "junk" }), /private key is unparsable/],
  ["the key of another certificate", () => pem(leaf2.certPem, leaf1), /does not match/],
  ["an expired certificate", () => expired, /expired at/],
];

describe("TlsTerminator.create", () => {
  it("loads the certificate and reports it", async () => {
    const { t } = await terminator();
    const x509 = new X509Certificate(leaf1.certPem);
    expect(t.current()).toEqual({
      serial: leaf1.serial,
      notAfter: new Date(x509.validTo),
      subjectAltNames: ["*.app.test.example", "app.test.example"],
      fingerprint256: x509.fingerprint256,
    });
  });

  it.each(BAD_PAIRS)("rejects %s with E_CERT_LOAD", async (_, pair, reason) => {
    const error = await terminator(pair()).then(
      () => undefined,
      (e: TerminateError) => e,
    );
    expect(error?.code).toBe("E_CERT_LOAD");
    expect(error?.message).toMatch(reason);
  });
});

describe("handshake policy", () => {
  it.each(["TLSv1.3", "TLSv1.2"] as const)("accepts %s with an X25519 key exchange", async (v) => {
    const gw = await gateway((await terminator()).t);
    const c = await connect(gw, { minVersion: v, maxVersion: v });
    expect(c.socket.getProtocol()).toBe(v);
    expect(c.socket.getEphemeralKeyInfo()).toMatchObject({ name: "X25519" });
    expect(c.socket.getPeerCertificate().serialNumber).toBe(leaf1.serial);
    expect(await echo(c, "ping")).toBe("ping");
  });

  it.each([
    ["TLS 1.1", { minVersion: "TLSv1.1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" }],
    ["CBC cipher AES128-SHA", { maxVersion: "TLSv1.2", ciphers: "AES128-SHA" }],
    [
      "CBC cipher ECDHE-ECDSA-AES128-SHA",
      { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-SHA" },
    ],
  ] as const)("rejects %s", async (_, opts) => {
    const gw = await gateway((await terminator()).t);
    expect(await connectError(gw, opts)).toMatch(
      /^ERR_SSL_.*ALERT_(PROTOCOL_VERSION|HANDSHAKE_FAILURE)$/,
    );
    const result = await outcome(gw, 0);
    expect(result.ok ? "ok" : result.error.code).toBe("E_TLS_HANDSHAKE");
  });

  it.each([
    ["P-256", "prime256v1"],
    ["P-384", "secp384r1"],
  ])("accepts a client that only offers %s", async (group, name) => {
    const gw = await gateway((await terminator()).t);
    const c = await connect(gw, { ecdhCurve: group });
    expect(c.socket.getEphemeralKeyInfo()).toMatchObject({ name });
  });

  it.each(["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"])(
    "serves an RSA certificate over TLS 1.2 with %s",
    async (cipher) => {
      const gw = await gateway((await terminator(rsa)).t);
      const c = await connect(gw, { maxVersion: "TLSv1.2", ciphers: cipher });
      expect(c.socket.getCipher().name).toBe(cipher);
      expect(c.socket.getPeerCertificate().serialNumber).toBe(rsa.serial);
    },
  );

  it.each([
    ["h2", ["h2", "http/1.1"], "h2"],
    ["h2", ["http/1.1"], "http/1.1"],
    ["h2", ["spdy/3"], false],
    ["h2", undefined, false],
    ["http1", ["h2", "http/1.1"], "http/1.1"],
    ["http1", ["h2"], false],
    ["http1", undefined, false],
  ] as const)("ALPN in %s mode for a client offering %j: %s", async (mode, offer, selected) => {
    const gw = await gateway((await terminator()).t, mode);
    const c = await connect(gw, offer ? { ALPNProtocols: [...offer] } : {});
    expect(c.socket.alpnProtocol).toBe(selected);
    expect((await outcome(gw, 0)).ok).toBe(true);
  });

  it("openssl s_client -alpn h2 gets h2 over X25519", async () => {
    const gw = await gateway((await terminator()).t, "h2");
    const out = await sClient(gw, ["-alpn", "h2"]);
    expect(out).toMatch(/^ALPN protocol: h2$/m);
    expect(out).toMatch(/^Server Temp Key: X25519/m);
    expect(out).toMatch(/Verify return code: 0 \(ok\)/);
  });

  it("refuses client-initiated renegotiation (s_client R on TLS 1.2)", async () => {
    const gw = await gateway((await terminator()).t);
    const out = await sClient(gw, ["-tls1_2"], async (stdin, seen) => {
      await until(() => seen().includes("Verify return code"), "s_client handshake");
      stdin.write("before\n");
      await until(() => seen().includes("before"), "echo before renegotiation");
      stdin.write("R\n");
    });
    expect(out).toMatch(/RENEGOTIATING/);
    expect(out).toMatch(/no renegotiation/);
    const result = await outcome(gw, 0);
    if (!result.ok) throw result.error;
    await until(() => result.socket.destroyed, "server side closes");
  });
});

describe("session resumption", () => {
  it("resumes TLS 1.3 and hands out a fresh ticket on every resumption", async () => {
    const gw = await gateway((await terminator()).t);
    const first = await connect(gw);
    await until(() => first.sessions.length > 0, "ticket of the full handshake");
    let ticket = first.sessions.at(-1);
    for (let i = 0; i < 3; i++) {
      const next = await connect(gw, { session: ticket });
      expect(next.socket.isSessionReused()).toBe(true);
      await until(() => next.sessions.length > 0, "ticket after a resumed handshake");
      expect(next.sessions.at(-1)).not.toEqual(ticket);
      ticket = next.sessions.at(-1);
    }
  });

  it("resumes TLS 1.2 with a session ticket", async () => {
    const gw = await gateway((await terminator()).t);
    const first = await connect(gw, { maxVersion: "TLSv1.2" });
    await until(() => first.sessions.length > 0, "TLS 1.2 ticket");
    const again = await connect(gw, { maxVersion: "TLSv1.2", session: first.sessions.at(-1) });
    expect(again.socket.isSessionReused()).toBe(true);
    expect(await echo(again, "resumed")).toBe("resumed");
  });

  it("accepts tickets of the previous key after a rotation, not older ones", async () => {
    const { t } = await terminator();
    const gw = await gateway(t);
    const first = await connect(gw);
    await until(() => first.sessions.length > 0, "first ticket");
    const old = first.sessions.at(-1);
    t.rotateTicketKeys();
    const afterOne = await connect(gw, { session: old });
    expect(afterOne.socket.isSessionReused()).toBe(true);
    await until(() => afterOne.sessions.length > 0, "ticket sealed with the new key");
    t.rotateTicketKeys();
    const afterTwo = await connect(gw, { session: old });
    expect(afterTwo.socket.isSessionReused()).toBe(false); // a full handshake, still a success
    const renewed = await connect(gw, { session: afterOne.sessions.at(-1) });
    expect(renewed.socket.isSessionReused()).toBe(true);
  });

  it("rotates on its own every ticketRotationMs", async () => {
    const gw = await gateway((await terminator(leaf1, { ticketRotationMs: 100 })).t);
    const first = await connect(gw);
    await until(() => first.sessions.length > 0, "first ticket");
    await sleep(450); // at least two rotations; the session lifetime (1 s) has not run out
    const later = await connect(gw, { session: first.sessions.at(-1) });
    expect(later.socket.isSessionReused()).toBe(false);
  });

  it("without Node's ticket hook: one key in ticketKeys, no ticket after resumption", async () => {
    vi.spyOn(TicketKeyRing.prototype, "attach").mockReturnValue(false);
    const { t } = await terminator();
    const gw = await gateway(t);
    const first = await connect(gw);
    await until(() => first.sessions.length > 0, "first ticket");
    const again = await connect(gw, { session: first.sessions.at(-1) });
    expect(again.socket.isSessionReused()).toBe(true);
    expect(await echo(again, "x")).toBe("x");
    expect(again.sessions).toEqual([]); // DESIGN.md §7: OpenSSL's default sends none
    t.rotateTicketKeys();
    const rotated = await connect(gw, { session: first.sessions.at(-1) });
    expect(rotated.socket.isSessionReused()).toBe(false);
  });
});

describe("handshake failures", () => {
  function raw(gw: Gateway, bytes: Buffer, end = false): Promise<number> {
    const started = Date.now();
    const socket = net.connect(gw.port, "127.0.0.1", () =>
      end ? socket.end(bytes) : socket.write(bytes),
    );
    cleanups.push(() => socket.destroy());
    socket.on("error", () => {});
    socket.resume();
    const closed = new Promise<number>((resolve) =>
      socket.once("close", () => resolve(Date.now() - started)),
    );
    return within(closed, 5000, "server closes the connection");
  }
  const codeOf = async (gw: Gateway, i: number) => {
    const result = await outcome(gw, i);
    return result.ok ? "ok" : result.error.code;
  };

  it("destroys a stalled handshake after handshakeTimeoutMs", async () => {
    const gw = await gateway((await terminator(leaf1, { handshakeTimeoutMs: 300 })).t);
    const elapsed = await raw(gw, PARTIAL_HELLO);
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(300 + 700);
    expect(await codeOf(gw, 0)).toBe("E_TLS_TIMEOUT");
  });

  it("fails fast on bytes that are no TLS", async () => {
    const gw = await gateway((await terminator()).t);
    expect(await raw(gw, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).toBeLessThan(1000);
    expect(await codeOf(gw, 0)).toBe("E_TLS_HANDSHAKE");
  });

  it("fails when the client hangs up mid-handshake", async () => {
    const gw = await gateway((await terminator()).t);
    await raw(gw, PARTIAL_HELLO, true);
    expect(await codeOf(gw, 0)).toBe("E_TLS_HANDSHAKE");
  });

  it("survives the caller destroying the raw socket mid-handshake", async () => {
    const { t } = await terminator();
    const aborted = await gateway(t, "http1", true);
    await raw(aborted, PARTIAL_HELLO);
    expect(await codeOf(aborted, 0)).toBe("E_TLS_HANDSHAKE");
    const gw = await gateway(t);
    expect(await echo(await connect(gw), "later handshakes work")).toBe("later handshakes work");
  });

  it("leaves no file descriptors behind", async () => {
    const gw = await gateway((await terminator(leaf1, { handshakeTimeoutMs: 200 })).t);
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    for (let i = 0; i < 10; i++) {
      const c = await connect(gw);
      await echo(c, "x");
      c.socket.end();
    }
    await Promise.all([0, 1, 2, 3, 4].map(() => raw(gw, PARTIAL_HELLO)));
    await Promise.all([0, 1, 2, 3, 4].map(() => raw(gw, Buffer.from("junk\r\n\r\n"))));
    await until(() => fds() <= before, `fds back to ${before}`);
  });
});

describe("certificate reload", () => {
  it("serves the new certificate to new connections and keeps open ones", async () => {
    const { t, files } = await terminator();
    const gw = await gateway(t);
    const open = await connect(gw);
    await until(() => open.sessions.length > 0, "ticket before the swap");
    place(files, leaf2);
    const result = await t.reload();
    expect(result).toEqual({ ok: true, cert: t.current() });
    expect(t.current().serial).toBe(leaf2.serial);
    const fresh = await connect(gw);
    expect(fresh.socket.getPeerCertificate().serialNumber).toBe(leaf2.serial);
    expect(open.socket.getPeerCertificate().serialNumber).toBe(leaf1.serial);
    expect(await echo(open, "still here")).toBe("still here");
    const resumed = await connect(gw, { session: open.sessions.at(-1) });
    expect(resumed.socket.isSessionReused()).toBe(true); // tickets outlive the swap
  });

  it("picks up files replaced by rename when watching", async () => {
    const log = vi.fn();
    const { t, files } = await terminator(leaf1, { watch: true, watchIntervalMs: 20, log });
    place(files, leaf2);
    await until(() => t.current().serial === leaf2.serial, "watcher reloads");
    expect(log).toHaveBeenCalledWith(
      "info",
      "certificate loaded",
      expect.objectContaining({ serial: leaf2.serial }),
    );
  });

  it.each(BAD_PAIRS)("keeps the old certificate when given %s", async (_, pair, reason) => {
    const log = vi.fn();
    const { t, files } = await terminator(leaf1, { log });
    const gw = await gateway(t);
    place(files, pair());
    const result = await t.reload();
    expect(result.ok ? "" : result.error).toMatch(reason);
    expect(t.current().serial).toBe(leaf1.serial);
    expect(log).toHaveBeenCalledWith(
      "error",
      "certificate reload rejected, keeping the current one",
      expect.objectContaining({ error: expect.stringMatching(reason), serial: leaf1.serial }),
    );
    const c = await connect(gw);
    expect(c.socket.getPeerCertificate().serialNumber).toBe(leaf1.serial);
  });

  it("stops watching after close()", async () => {
    const { t, files } = await terminator(leaf1, { watch: true, watchIntervalMs: 20 });
    t.close();
    place(files, leaf2);
    await sleep(200);
    expect(t.current().serial).toBe(leaf1.serial);
  });
});
