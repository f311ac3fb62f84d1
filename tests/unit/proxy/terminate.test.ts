// TLS termination over real loopback sockets with openssl-made certificates.
import { X509Certificate } from "node:crypto";
import { readdirSync } from "node:fs";
import net from "node:net";
import { describe, expect, it, vi } from "vitest";
import type { TerminateError } from "../../../gateway-runtime/proxy/terminate.js";
import { TicketKeyRing } from "../../../gateway-runtime/proxy/tls-options.js";
import {
  BAD_PAIRS,
  cleanups,
  connect,
  connectError,
  echo,
  type Gateway,
  gateway,
  leaf1,
  leaf2,
  outcome,
  PARTIAL_HELLO,
  place,
  rsa,
  sClient,
  sleep,
  terminator,
  until,
  useTerminatorHarness,
  within,
} from "./terminate-harness.js";

useTerminatorHarness();

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
  it.each([
    ["TLSv1.3", "X25519MLKEM768"],
    ["TLSv1.2", "X25519"], // ML-KEM hybrids are TLS 1.3 only
  ] as const)("accepts %s with a %s key exchange", async (v, group) => {
    const gw = await gateway((await terminator()).t);
    const c = await connect(gw, { minVersion: v, maxVersion: v });
    expect(c.socket.getProtocol()).toBe(v);
    expect(c.socket.getEphemeralKeyInfo()).toMatchObject({ name: group });
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
    expect(again.sessions).toEqual([]); // OpenSSL's default sends none after a resumption
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
    expect(elapsed).toBeLessThan(300 + 2_700);
    expect(await codeOf(gw, 0)).toBe("E_TLS_TIMEOUT");
  });

  it("fails fast on bytes that are no TLS", async () => {
    const gw = await gateway((await terminator()).t);
    expect(await raw(gw, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).toBeLessThan(1500); // timeout: 2 s
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
      expect.objectContaining({ serial: leaf2.serial, trigger: "file change" }),
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
      expect.objectContaining({
        error: expect.stringMatching(reason),
        serial: leaf1.serial,
        trigger: "request",
      }),
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
