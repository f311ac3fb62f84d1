/**
 * The agent's RegisterCvm client against the real RPC server (and a few hand-made servers for
 * answers ours never gives), on loopback with real certificates: what a CVM operator reads
 * when registration fails.
 */
import { createServer as createHttpsServer, type Server } from "node:https";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentRpcError, registerCvm, registerUrl } from "../../../gateway-runtime/agent/client.js";
import { planFromResponse } from "../../../gateway-runtime/agent/plan.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import type { RegisterCvmRequest } from "../../../gateway-runtime/rpc/wire.js";
import { RpcServer } from "../../../gateway-runtime/rpc/server.js";
import { generateWgKeyPair } from "../../../gateway-runtime/keys/wireguard.js";
import { createCa, issueLeaf, type LeafCert, type TestCa } from "../../../testkit/certs.js";
import {
  appInfoSpec,
  createTestCa,
  issueRaTlsCert,
  type TestCert,
} from "../../../testkit/ra-tls.js";

const APP = "aa".repeat(20);
const gwKeys = generateWgKeyPair();
const me = generateWgKeyPair();
let proxyCa: TestCa;
let leaf: LeafCert;
let raCa: TestCert;
let client: TestCert;
let rpc: RpcServer;
let base: string;
const seen: RegisterCvmRequest[] = [];
let refuseWith: GatewayError | undefined;

beforeAll(async () => {
  proxyCa = createCa();
  leaf = issueLeaf(proxyCa);
  raCa = createTestCa();
  client = issueRaTlsCert(raCa, { appInfo: appInfoSpec(APP, "bb".repeat(20)) });
  rpc = await RpcServer.start({
    handler: {
      async register(_cert, req) {
        seen.push(req);
        if (refuseWith) throw refuseWith;
        return {
          response: {
            wg: {
              client_ip: "10.4.0.7",
              servers: [{ pk: gwKeys.publicKey, ip: "10.4.0.1/16", endpoint: "192.0.2.1:51820" }],
            },
            agent: {
              external_port: 443,
              internal_port: 8090,
              domain: "app.test.example",
              app_address_ns_prefix: "_dstack-app-address",
            },
          },
        };
      },
      info: () => ({ base_domain: "", external_port: 443, app_address_ns_prefix: "", version: "" }),
    },
    certFile: leaf.certFile,
    keyFile: leaf.keyFile,
    clientCaPem: raCa.pem,
    address: "127.0.0.1",
    port: 0,
  });
  base = `https://127.0.0.1:${rpc.port}`;
});

afterAll(async () => {
  await rpc?.close();
  proxyCa?.cleanup();
});

const options = (over: Partial<Parameters<typeof registerCvm>[0]> = {}) => ({
  gateway: base,
  cert: client.pem,
  key: client.keyPem,
  ca: proxyCa.certPem,
  servername: "rpc.app.test.example",
  timeoutMs: 5_000,
  ...over,
});

async function failure(promise: Promise<unknown>): Promise<AgentRpcError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentRpcError);
  return err as AgentRpcError;
}

describe("registerCvm", () => {
  it("sends our public key over mutual TLS and returns the answer", async () => {
    refuseWith = undefined;
    const body = await registerCvm(options(), me.publicKey);
    expect(seen.at(-1)).toEqual({ client_public_key: me.publicKey });
    expect(planFromResponse(body)).toMatchObject({ clientIp: "10.4.0.7", address: "10.4.0.7/16" });
  });

  it("names the URL, the HTTP status and the gateway's error code when refused", async () => {
    refuseWith = new GatewayError("E_AUTH_DENIED", "app aaaa is not allowed");
    const err = await failure(registerCvm(options(), me.publicKey));
    expect(err.code).toBe("E_AGENT_REGISTER_REFUSED");
    expect(err.status).toBe(403);
    expect(err.gatewayCode).toBe("E_AUTH_DENIED");
    expect(err.message).toBe(
      `gateway ${base} refused RegisterCvm: HTTP 403 E_AUTH_DENIED: app aaaa is not allowed`,
    );
  });

  it("says when our client certificate is not trusted by the gateway", async () => {
    const stranger = issueRaTlsCert(createTestCa("another CA"), {
      appInfo: appInfoSpec(APP, "cc".repeat(20)),
    });
    const err = await failure(
      registerCvm(options({ cert: stranger.pem, key: stranger.keyPem }), me.publicKey),
    );
    expect(err.status).toBe(401);
    expect(err.gatewayCode).toBe("E_RPC_CERT_UNTRUSTED");
    expect(err.message).toMatch(
      new RegExp(
        `^gateway ${base} refused RegisterCvm: HTTP 401 E_RPC_CERT_UNTRUSTED: client certificate is not trusted`,
      ),
    );
  });

  it.each([
    ["without --ca", { ca: undefined }, /its TLS certificate is not trusted \(\w+/],
    ["with the wrong name", { servername: "rpc.other.example" }, /ERR_TLS_CERT_ALTNAME_INVALID/],
  ])("refuses a gateway certificate it cannot verify (%s)", async (_name, over, pattern) => {
    const err = await failure(registerCvm(options(over), me.publicKey));
    expect(err.code).toBe("E_AGENT_GATEWAY_UNREACHABLE");
    expect(err.message).toMatch(new RegExp(`^gateway ${base}: `));
    expect(err.message).toMatch(pattern);
  });

  it("names a refused connection and a gateway that never answers", async () => {
    const closed = createTcpServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const refused = await failure(
      registerCvm(options({ gateway: `https://127.0.0.1:${port}` }), me.publicKey),
    );
    expect(refused.message).toBe(
      `gateway https://127.0.0.1:${port}: ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${port}`,
    );

    const silent = createTcpServer(() => {}); // accepts, never speaks TLS
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const silentPort = (silent.address() as AddressInfo).port;
    try {
      const gateway = `https://127.0.0.1:${silentPort}`;
      const err = await failure(registerCvm(options({ gateway, timeoutMs: 300 }), me.publicKey));
      expect(err.message).toBe(`gateway ${gateway}: no answer within 300 ms`);
    } finally {
      silent.close();
      for (const s of [silent]) s.unref();
    }
  });

  it("reports dstack's error body, and a 200 that is not JSON", async () => {
    const answers: [number, string][] = [
      [500, '{"error":"wg syncconf failed"}'],
      [200, "<html>"],
    ];
    const server: Server = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem }, (_q, s) => {
      const [status, body] = answers.shift() ?? [500, ""];
      s.writeHead(status).end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const gateway = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const e500 = await failure(registerCvm(options({ gateway }), me.publicKey));
      expect(e500.message).toBe(
        `gateway ${gateway} refused RegisterCvm: HTTP 500: wg syncconf failed`,
      );
      expect(e500.gatewayCode).toBeUndefined();
      const e200 = await failure(registerCvm(options({ gateway }), me.publicKey));
      expect(e200.code).toBe("E_AGENT_BAD_RESPONSE");
      expect(e200.message).toBe(
        `gateway ${gateway}: RegisterCvm answered HTTP 200 with a body that is not JSON`,
      );
    } finally {
      server.close();
      server.closeAllConnections();
    }
  });
});

describe("registerUrl", () => {
  it.each([
    ["https://gw.example.com:8000", "https://gw.example.com:8000/prpc/Gateway.RegisterCvm?json"],
    ["https://gw.example.com/", "https://gw.example.com/prpc/Gateway.RegisterCvm?json"],
    ["https://gw.example.com/base/", "https://gw.example.com/base/prpc/Gateway.RegisterCvm?json"],
  ])("%s → %s", (gateway, url) => {
    expect(registerUrl(gateway).href).toBe(url);
  });

  it("refuses plain http", () => {
    expect(() => registerUrl("http://gw.example.com")).toThrow(/must be https/);
  });
});
