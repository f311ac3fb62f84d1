import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatIpv4 } from "../../../gateway-runtime/config/net.js";
import { generateWgKeyPair } from "../../../gateway-runtime/keys/wireguard.js";
import {
  parseWgConfigEndpoints,
  parseWgDump,
  renderWgConfig,
  type WgPeer,
} from "../../../gateway-runtime/wg/render.js";

const key = (byte: number) => Buffer.alloc(32, byte).toString("base64");
const PRIVATE = key(0x11); // "ERERERERERERERERERERERERERERERERERERERERERE="
const A = key(0xaa);
const B = key(0xbb);
const C = key(0x01);

describe("renderWgConfig", () => {
  it("renders the syncconf format with peers in address order", () => {
    const text = renderWgConfig({
      privateKey: PRIVATE,
      listenPort: 51820,
      peers: [
        { publicKey: A, ip: "10.4.0.10" },
        { publicKey: B, ip: "10.4.0.9" },
        { publicKey: C, ip: "10.4.1.2" },
      ],
    });
    expect(text).toBe(
      [
        "[Interface]",
        `PrivateKey = ${PRIVATE}`,
        "ListenPort = 51820",
        "",
        "[Peer]",
        `PublicKey = ${B}`,
        "AllowedIPs = 10.4.0.9/32",
        "",
        "[Peer]",
        `PublicKey = ${A}`,
        "AllowedIPs = 10.4.0.10/32",
        "",
        "[Peer]",
        `PublicKey = ${C}`,
        "AllowedIPs = 10.4.1.2/32",
        "",
      ].join("\n"),
    );
  });

  it("renders an interface without peers", () => {
    expect(renderWgConfig({ privateKey: PRIVATE, listenPort: 1, peers: [] })).toBe(
      `[Interface]\nPrivateKey = ${PRIVATE}\nListenPort = 1\n`,
    );
  });

  it.each<[string, WgPeer[], string]>([
    [
      "a key with a newline",
      [{ publicKey: `${A}\nEndpoint = 1.2.3.4:1`, ip: "10.4.0.2" }],
      "not a WireGuard key",
    ],
    [
      "a non-canonical key",
      [{ publicKey: `${A.slice(0, 42)}B=`, ip: "10.4.0.2" }],
      "not a WireGuard key",
    ],
    ["a CIDR as ip", [{ publicKey: A, ip: "10.4.0.0/16" }], "not an IPv4 address"],
    ["an ip with a newline", [{ publicKey: A, ip: "10.4.0.2\n[Peer]" }], "not an IPv4 address"],
    [
      "a repeated key",
      [
        { publicKey: A, ip: "10.4.0.2" },
        { publicKey: A, ip: "10.4.0.3" },
      ],
      "repeats",
    ],
    [
      "a repeated ip",
      [
        { publicKey: A, ip: "10.4.0.2" },
        { publicKey: B, ip: "10.4.0.2" },
      ],
      "repeats",
    ],
  ])("rejects %s with E_WG_PEER_INVALID", (_name, peers, message) => {
    const render = () => renderWgConfig({ privateKey: PRIVATE, listenPort: 51820, peers });
    expect(render).toThrow(expect.objectContaining({ code: "E_WG_PEER_INVALID" }));
    expect(render).toThrow(message);
  });

  it("rejects a bad private key without echoing it", () => {
    const secret = `${PRIVATE.slice(0, 40)}x`;
    const render = () => renderWgConfig({ privateKey: secret, listenPort: 51820, peers: [] });
    expect(render).toThrow(expect.objectContaining({ code: "E_WG_KEY_INVALID" }));
    expect(() => render()).not.toThrow(secret);
  });

  it.each([0, 65536, 1.5, Number.NaN])("rejects listen port %s", (listenPort) => {
    expect(() => renderWgConfig({ privateKey: PRIVATE, listenPort, peers: [] })).toThrow(
      expect.objectContaining({ code: "E_WG_PORT_INVALID" }),
    );
  });
});

// The shape `wg show <if> dump` prints (wireguard-tools 1.0.20210914, read off a live
// wireguard-go interface): tab-separated, interface line first.
const REAL_DUMP = [
  [PRIVATE, key(0x12), "51820", "off"],
  [A, "(none)", "192.0.2.2:41641", "10.4.0.2/32", "1764163200", "1180", "1244", "off"],
  [B, "(none)", "(none)", "10.4.0.3/32", "0", "0", "0", "off"],
  [C, "(none)", "[2001:db8::1]:51820", "10.4.0.4/32,10.5.0.0/24", "1764163201", "92", "0", "25"],
]
  .map((fields) => fields.join("\t"))
  .join("\n")
  .concat("\n");

describe("parseWgDump", () => {
  it("reads every peer of a real dump and skips the interface line", () => {
    const status = parseWgDump(REAL_DUMP);
    expect([...status.keys()]).toEqual([C, A, B]); // public-key order
    expect(status.get(A)).toEqual({
      lastHandshakeMs: 1_764_163_200_000,
      endpoint: "192.0.2.2:41641",
      allowedIps: ["10.4.0.2/32"],
      rxBytes: 1180,
      txBytes: 1244,
    });
    expect(status.get(B)).toEqual({
      lastHandshakeMs: 0,
      allowedIps: ["10.4.0.3/32"],
      rxBytes: 0,
      txBytes: 0,
    });
    expect(status.get(C)?.endpoint).toBe("[2001:db8::1]:51820");
    expect(status.get(C)?.allowedIps).toEqual(["10.4.0.4/32", "10.5.0.0/24"]);
    expect(JSON.stringify([...status])).not.toContain(PRIVATE);
  });

  it("reads an interface without peers, also without a final newline", () => {
    expect(parseWgDump(`(none)\t(none)\t36257\toff`).size).toBe(0);
  });

  it.each([
    ["empty output", ""],
    ["a missing interface line", `${A}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`],
    ["a short peer line", `${PRIVATE}\t${A}\t1\toff\n${B}\t(none)\t0\n`],
    ["a bad handshake", `${PRIVATE}\t${A}\t1\toff\n${B}\t(none)\t(none)\t(none)\t-1\t0\t0\toff\n`],
    ["a bad key", `${PRIVATE}\t${A}\t1\toff\nxyz\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`],
  ])("rejects %s with E_WG_DUMP_INVALID, quoting no line", (_name, text) => {
    expect(() => parseWgDump(text)).toThrow(expect.objectContaining({ code: "E_WG_DUMP_INVALID" }));
    expect(() => parseWgDump(text)).not.toThrow(PRIVATE);
  });
});

const peersArb = fc
  .uniqueArray(
    fc.record({
      key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      ip: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    }),
    { selector: (p) => p.ip, maxLength: 40 },
  )
  .map((raw) => {
    const seen = new Set<string>();
    return raw
      .map((p) => ({ publicKey: Buffer.from(p.key).toString("base64"), ip: formatIpv4(p.ip) }))
      .filter((p) => !seen.has(p.publicKey) && seen.add(p.publicKey));
  });

function dumpOf(entries: readonly (readonly [WgPeer, number])[]): string {
  const lines = entries.map(([p, handshake]) =>
    [p.publicKey, "(none)", "(none)", `${p.ip}/32`, String(handshake), "0", "0", "off"].join("\t"),
  );
  return [`${PRIVATE}\t${A}\t51820\toff`, ...lines, ""].join("\n");
}

const shuffledPeersArb = peersArb.chain((peers) =>
  fc.tuple(
    fc.constant(peers),
    fc.shuffledSubarray(peers, { minLength: peers.length, maxLength: peers.length }),
  ),
);

describe("ordering properties", () => {
  it("renders the same bytes for any order of the same peers", () => {
    fc.assert(
      fc.property(shuffledPeersArb, ([peers, shuffled]) => {
        const render = (p: WgPeer[]) =>
          renderWgConfig({ privateKey: PRIVATE, listenPort: 51820, peers: p });
        expect(render(shuffled)).toBe(render(peers));
        expect(render(peers).split("[Peer]").length - 1).toBe(peers.length);
      }),
    );
  });

  it("parses a dump into the same map, in key order, for any line order", () => {
    const entriesArb = shuffledPeersArb.chain(([peers, shuffled]) =>
      fc.tuple(
        fc.constant(peers),
        fc.constant(shuffled),
        fc.array(fc.nat({ max: 2 ** 31 }), { minLength: peers.length, maxLength: peers.length }),
      ),
    );
    fc.assert(
      fc.property(entriesArb, ([peers, shuffled, seconds]) => {
        const handshake = new Map(peers.map((p, i) => [p.publicKey, seconds[i] ?? 0]));
        const entries = (list: WgPeer[]) =>
          list.map((p) => [p, handshake.get(p.publicKey) ?? 0] as const);
        const forward = parseWgDump(dumpOf(entries(peers)));
        expect([...parseWgDump(dumpOf(entries(shuffled)))]).toEqual([...forward]);
        expect([...forward.keys()]).toEqual(peers.map((p) => p.publicKey).sort());
        for (const p of peers) {
          expect(forward.get(p.publicKey)?.lastHandshakeMs).toBe(
            (handshake.get(p.publicKey) ?? 0) * 1000,
          );
          expect(forward.get(p.publicKey)?.allowedIps).toEqual([`${p.ip}/32`]);
        }
      }),
    );
  });
});

describe("peer endpoints", () => {
  const key = generateWgKeyPair();
  const peer = { publicKey: generateWgKeyPair().publicKey, ip: "10.4.0.7" };

  it("renders a known endpoint so this side can start the handshake, and reads it back", () => {
    const text = renderWgConfig({
      privateKey: key.privateKey,
      listenPort: 51820,
      peers: [{ ...peer, endpoint: "192.0.2.7:40001" }],
    });
    expect(text).toContain(
      `PublicKey = ${peer.publicKey}\nAllowedIPs = 10.4.0.7/32\nEndpoint = 192.0.2.7:40001\n`,
    );
    expect(parseWgConfigEndpoints(text)).toEqual(new Map([[peer.publicKey, "192.0.2.7:40001"]]));
  });

  it.each(["192.0.2.7", "host:1", "192.0.2.7:1\nPublicKey = x", "[fe80::1%eth0]:1"])(
    "refuses endpoint %j",
    (endpoint) => {
      expect(() =>
        renderWgConfig({
          privateKey: key.privateKey,
          listenPort: 51820,
          peers: [{ ...peer, endpoint }],
        }),
      ).toThrow("endpoint is not ip:port");
    },
  );
});
