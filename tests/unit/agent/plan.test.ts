import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  isEndpoint,
  keepPeers,
  planFromResponse,
  renderTunnelConfig,
} from "../../../gateway-runtime/agent/plan.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import { generateWgKeyPair } from "../../../gateway-runtime/keys/wireguard.js";

const gw = generateWgKeyPair();
const gw2 = generateWgKeyPair();
const me = generateWgKeyPair();

/** A response as our gateway (and dstack's) sends it. */
function response(servers: unknown[], clientIp = "10.4.0.2"): unknown {
  return {
    wg: { client_ip: clientIp, servers },
    agent: {
      external_port: 443,
      internal_port: 8090,
      domain: "app.example.com",
      app_address_ns_prefix: "_dstack-app-address",
    },
    gateways: [],
  };
}

const server = (ip: string, pk = gw.publicKey, endpoint = "203.0.113.10:51820") => ({
  pk,
  ip,
  endpoint,
});

function problem(body: unknown): string {
  try {
    planFromResponse(body);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe("E_AGENT_BAD_RESPONSE");
    return (err as Error).message;
  }
  throw new Error("expected planFromResponse to throw");
}

describe("planFromResponse: address and routes", () => {
  it.each([
    // server ip as sent          address           routes
    ["10.4.0.1/16", "10.4.0.2/16", []],
    ["10.4.0.1/24", "10.4.0.2/24", []],
    ["10.4.0.1", "10.4.0.2/32", ["10.4.0.1/32"]],
    ["10.4.0.1/32", "10.4.0.2/32", ["10.4.0.1/32"]],
    // a prefix that does not reach the server: it gets a route of its own
    ["10.5.0.1/30", "10.4.0.2/30", ["10.5.0.1/32"]],
  ])("server ip %s gives address %s and routes %j", (ip, address, routes) => {
    const plan = planFromResponse(response([server(ip)]));
    expect(plan).toEqual({
      clientIp: "10.4.0.2",
      address,
      peers: [{ publicKey: gw.publicKey, ip: ip.split("/")[0], endpoint: "203.0.113.10:51820" }],
      routes,
      domain: "app.example.com",
    });
  });

  it("takes the prefix from the first server and sorts peers by key", () => {
    const plan = planFromResponse(
      response([server("10.4.0.1/16", gw.publicKey), server("10.4.0.3", gw2.publicKey)]),
    );
    expect(plan.address).toBe("10.4.0.2/16");
    expect(plan.routes).toEqual([]);
    expect(plan.peers.map((p) => p.publicKey)).toEqual(
      [gw.publicKey, gw2.publicKey].sort((a, b) => (a < b ? -1 : 1)),
    );
  });

  it("accepts a dstack answer without agent or gateways, and ignores unknown fields", () => {
    const plan = planFromResponse({
      wg: { client_ip: "10.0.0.9", servers: [server("10.0.0.1/8")], extra: 1 },
      future: true,
    });
    expect(plan).toMatchObject({ address: "10.0.0.9/8" });
    expect(plan).not.toHaveProperty("domain");
  });
});

describe("planFromResponse: refuses what it cannot configure", () => {
  it.each([
    ["no wg", {}, "wg: "],
    ["client ip not IPv4", response([server("10.4.0.1/16")], "10.4.0.300"), "wg.client_ip"],
    ["client ip with prefix", response([server("10.4.0.1/16")], "10.4.0.2/16"), "wg.client_ip"],
    ["no servers", response([]), "wg.servers is empty"],
    ["bad key", response([server("10.4.0.1/16", "not-a-key")]), "wg.servers[0].pk"],
    [
      "repeated key",
      response([server("10.4.0.1/16"), server("10.4.0.3/16")]),
      "wg.servers[1].pk repeats",
    ],
    ["bad ip", response([server("10.4.0.1/33")]), "wg.servers[0].ip"],
    ["IPv6 ip", response([server("fd00::1/64")]), "wg.servers[0].ip"],
    ["own address", response([server("10.4.0.2/16")]), "client's own address"],
    [
      "endpoint with a newline",
      response([server("10.4.0.1/16", gw.publicKey, "1.2.3.4:1\nPrivateKey = x")]),
      "wg.servers[0].endpoint",
    ],
    [
      "endpoint without port",
      response([server("10.4.0.1/16", gw.publicKey, "gw.example.com")]),
      "endpoint",
    ],
    ["wrong type", { wg: { client_ip: 7, servers: [] } }, "wg.client_ip"],
  ])("%s", (_name, body, fragment) => {
    expect(problem(body)).toContain(fragment);
  });
});

describe("isEndpoint", () => {
  it.each([
    ["203.0.113.10:51820", true],
    ["gw.example.com:51820", true],
    ["[2001:db8::1]:51820", true],
    ["gw:0", false],
    ["gw:65536", false],
    [":51820", false],
    ["gw.example.com", false],
    ["a b:1", false],
    ["gw:1\n", false],
  ])("%j → %s", (text, ok) => {
    expect(isEndpoint(text)).toBe(ok);
  });

  it("never accepts a line break or a space anywhere", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        const text = `${a}\n${b}`;
        expect(isEndpoint(text)).toBe(false);
        expect(isEndpoint(`${a} ${b}:1`)).toBe(false);
      }),
    );
  });
});

describe("renderTunnelConfig", () => {
  it("writes key, port and one peer per server with endpoint and keepalive 25", () => {
    const plan = planFromResponse(response([server("10.4.0.1/16")]));
    expect(renderTunnelConfig(plan, me.privateKey, 9182)).toBe(
      [
        "[Interface]",
        `PrivateKey = ${me.privateKey}`,
        "ListenPort = 9182",
        "",
        "[Peer]",
        `PublicKey = ${gw.publicKey}`,
        "AllowedIPs = 10.4.0.1/32",
        "Endpoint = 203.0.113.10:51820",
        "PersistentKeepalive = 25",
        "",
      ].join("\n"),
    );
  });

  it("leaves the port to WireGuard when none is given, and writes no wg-quick Address", () => {
    const text = renderTunnelConfig(
      planFromResponse(response([server("10.4.0.1/16")])),
      me.privateKey,
      undefined,
    );
    expect(text).not.toContain("ListenPort");
    expect(text).not.toContain("Address");
  });
});

describe("keepPeers", () => {
  const both = planFromResponse(
    response([server("10.4.0.1", gw.publicKey), server("10.9.0.1", gw2.publicKey, "gw2:51820")]),
  );
  const one = planFromResponse(response([server("10.4.0.1", gw.publicKey)]));

  it("keeps a left-out peer that `keep` holds, with its route, in the same order as a full answer", () => {
    const merged = keepPeers(one, both, () => true);
    expect(merged.peers).toEqual(both.peers);
    expect([...merged.routes].sort()).toEqual([...both.routes].sort());
    expect(renderTunnelConfig(merged, me.privateKey, undefined)).toBe(
      renderTunnelConfig(both, me.privateKey, undefined),
    );
  });

  it("drops the ones `keep` refuses, and never keeps a peer twice", () => {
    expect(keepPeers(one, both, () => false)).toBe(one);
    expect(keepPeers(both, both, () => true).peers).toEqual(both.peers);
  });
});
