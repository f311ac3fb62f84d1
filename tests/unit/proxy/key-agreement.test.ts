// The key agreement the terminating listener negotiates (GROUPS in tls-options.ts), seen both
// through Node's client API and on the wire: a loopback relay in front of the terminator keeps
// the plaintext handshake records, so a HelloRetryRequest (a second round trip) would show.
// Node clients, not `openssl s_client`: this machine's openssl CLI may be 3.0, without ML-KEM.
import net from "node:net";
import { describe, expect, it } from "vitest";
import { CLASSIC_GROUPS, GROUPS, pickGroups } from "../../../gateway-runtime/proxy/tls-options.js";
import {
  cleanups,
  connect,
  echo,
  type Gateway,
  gateway,
  terminator,
  useTerminatorHarness,
} from "./terminate-harness.js";

useTerminatorHarness();

/** RFC 8446 §4.1.3: the ServerHello.random that marks a HelloRetryRequest. */
const HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c";
/** IANA TLS Supported Groups. */
const GROUP_NAMES = new Map<number, string>([
  [0x0017, "P-256"],
  [0x0018, "P-384"],
  [0x001d, "X25519"],
  [0x11ec, "X25519MLKEM768"],
]);

interface Wire {
  readonly port: number;
  readonly fromClient: Buffer[];
  readonly fromServer: Buffer[];
}

/** A relay on loopback in front of `gw` that keeps what each side sent. */
async function relay(gw: Gateway): Promise<Wire> {
  const fromClient: Buffer[] = [];
  const fromServer: Buffer[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(gw.port, "127.0.0.1");
    client.on("data", (d: Buffer) => fromClient.push(d)).pipe(upstream);
    upstream.on("data", (d: Buffer) => fromServer.push(d)).pipe(client);
    for (const s of [client, upstream]) s.on("error", () => {});
    cleanups.push(() => {
      client.destroy();
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, fromClient, fromServer };
}

/** The bodies of the plaintext handshake records (a body starts with its message type). */
function handshakeRecords(chunks: Buffer[]): Buffer[] {
  const bytes = Buffer.concat(chunks);
  const records: Buffer[] = [];
  for (let at = 0; at + 5 <= bytes.length; at += 5 + bytes.readUInt16BE(at + 3)) {
    if (bytes[at] === 22) records.push(bytes.subarray(at + 5, at + 5 + bytes.readUInt16BE(at + 3)));
  }
  return records;
}

/** What the server's first message says: a HelloRetryRequest or not, and the key_share group. */
function serverHello(chunks: Buffer[]): { retry: boolean; group: string } {
  const body = handshakeRecords(chunks)[0] ?? Buffer.alloc(0);
  expect(body[0]).toBe(2); // ServerHello (a HelloRetryRequest is one too, by its random)
  // handshake header (4), legacy_version (2), random (32), session id, suite (2), compression (1)
  const retry = body.subarray(6, 38).toString("hex") === HRR_RANDOM;
  let at = 38 + 1 + (body[38] ?? 0) + 3;
  const end = at + 2 + body.readUInt16BE(at);
  let group = -1;
  for (at += 2; at < end; at += 4 + body.readUInt16BE(at + 2)) {
    if (body.readUInt16BE(at) === 0x0033) group = body.readUInt16BE(at + 4);
  }
  return { retry, group: GROUP_NAMES.get(group) ?? `0x${group.toString(16)}` };
}

/** Connects through the relay; returns the negotiated group as Node and the wire see it. */
async function negotiate(ecdhCurve: string | undefined) {
  const gw = await gateway((await terminator()).t);
  const wire = await relay(gw);
  const c = await connect({ ...gw, port: wire.port }, ecdhCurve ? { ecdhCurve } : {});
  expect(await echo(c, "ping")).toBe("ping");
  const clientHellos = handshakeRecords(wire.fromClient).filter((r) => r[0] === 1).length;
  return { node: c.socket.getEphemeralKeyInfo(), wire: serverHello(wire.fromServer), clientHellos };
}

describe("key agreement on the terminating listener", () => {
  it("prefers X25519MLKEM768, then X25519, then P-256", () => {
    expect(GROUPS.split(":").slice(0, 3)).toEqual(["X25519MLKEM768", "X25519", "P-256"]);
  });

  it("a client offering X25519MLKEM768 (Node's default on OpenSSL 3.5) gets it, in one round trip", async () => {
    const r = await negotiate(undefined);
    expect(r.node).toMatchObject({ name: "X25519MLKEM768" });
    expect(r.wire).toEqual({ retry: false, group: "X25519MLKEM768" });
    expect(r.clientHellos).toBe(1);
  });

  it("a client offering only X25519 gets X25519 without a HelloRetryRequest", async () => {
    const r = await negotiate("X25519");
    expect(r.node).toMatchObject({ name: "X25519" });
    expect(r.wire).toEqual({ retry: false, group: "X25519" });
    expect(r.clientHellos).toBe(1);
  });

  it("a client that lists X25519MLKEM768 but sends only an X25519 key share is not sent back for it", async () => {
    // OpenSSL 3.5 clients send a key share for the first group of their list only.
    const r = await negotiate("X25519:X25519MLKEM768");
    expect(r.wire).toEqual({ retry: false, group: "X25519" });
    expect(r.clientHellos).toBe(1);
  });

  it("of P-256 and X25519 key shares, the server's order picks X25519", async () => {
    const r = await negotiate("*P-256:*X25519");
    expect(r.wire).toEqual({ retry: false, group: "X25519" });
  });
});

describe("the server's order, for groups, keeps the client's ChaCha20", () => {
  it("a client that puts ChaCha20-Poly1305 first (no AES hardware) still gets it", async () => {
    const gw = await gateway((await terminator()).t);
    const c = await connect(gw, { ciphers: "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256" });
    expect(c.socket.getCipher().name).toBe("TLS_CHACHA20_POLY1305_SHA256");
  });
});

describe("pickGroups", () => {
  it("keeps X25519MLKEM768 first when OpenSSL takes the list", () => {
    expect(pickGroups(() => true)).toBe(GROUPS);
  });

  it("falls back to X25519, P-256, P-384 on an OpenSSL without ML-KEM (a node built against 3.0)", () => {
    expect(pickGroups((list) => !list.includes("MLKEM"))).toBe(CLASSIC_GROUPS);
    expect(CLASSIC_GROUPS).toBe("X25519:P-256:P-384");
  });
});
