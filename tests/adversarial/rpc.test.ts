/**
 * Part 2: hostile requests to the registration RPC (with valid client certificates) and the
 * admin API. Each must be refused with a 4xx and one of the project's stable error codes,
 * never a 5xx or a crash; and a refused request writes nothing: the state file's bytes and the
 * WireGuard interface's peers are the same after as before. The registered instance stays
 * reachable throughout.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import { createTestCa, issueRaTlsCert, appInfoSpec } from "../../testkit/ra-tls.js";
import { adminBody, notJsonType, registerBody } from "./bodies.js";
import { newId, startGateway, type TestGateway } from "./gateway.js";
import { type Baseline, baseline, expectRecovered, goodRequest } from "./health.js";
import { ADMIN_TOKEN, adminRequest, type Answer, rpcRequest } from "../../testkit/requests.js";
import { slowRequest } from "./slow.js";

const RUNS = 300;
/** Node's headersTimeout (10 s) and requestTimeout (30 s) as the servers set them, plus slack. */
const SLOW_HEADERS_BOUND_MS = 20_000;
const SLOW_BODY_BOUND_MS = 45_000;
const SLOW_CLIENTS = 10;

let gw: TestGateway;
let base: Baseline;
let slow: Promise<{ name: string; ms: number | undefined }[]>;

/** What a refused request must leave alone. */
async function snapshot(): Promise<{ state: string; peers: string }> {
  return { state: readFileSync(gw.statePath, "base64"), peers: await gw.wgPeers() };
}

function expectRefused(answer: Answer, codes: readonly string[], context: string): void {
  const what = `${context}: ${answer.status} ${answer.text.slice(0, 200)}`;
  expect(answer.status, what).toBeGreaterThanOrEqual(400);
  expect(answer.status, what).toBeLessThan(500);
  const code = /^\{/.test(answer.text)
    ? (JSON.parse(answer.text) as { code?: unknown }).code
    : undefined;
  expect(codes, what).toContain(code);
}

beforeAll(async () => {
  gw = await startGateway();
  base = await baseline(gw);
  // Slow clients run beside every other test of this file, which is the point (nobody else
  // waits on them), and because their bounds are tens of seconds; the last test collects them.
  const rpc = { port: gw.rpcPort, tls: { cert: gw.instanceCert }, path: "/prpc/RegisterCvm?json" };
  const admin = { port: gw.adminPort, path: "/prpc/Admin.GetInfo" };
  const targets = { rpc, admin };
  slow = Promise.all(
    Object.entries(targets).flatMap(([name, target]) =>
      Array.from({ length: SLOW_CLIENTS }, async (_, i) => {
        const part = i % 2 === 0 ? "headers" : "body";
        const bound = part === "headers" ? SLOW_HEADERS_BOUND_MS : SLOW_BODY_BOUND_MS;
        return { name: `${name} ${part} ${i}`, ms: await slowRequest(target, part, bound) };
      }),
    ),
  );
});
afterAll(async () => {
  await gw?.close();
});

describe("the registration RPC, with a valid client certificate", () => {
  it("refuses fast-check bodies with 4xx and a stable code, writing nothing", {
    timeout: 120_000,
  }, async () => {
    const before = await snapshot();
    // A new instance of the registered app: any body the RPC took would register it.
    const cert = gw.clientCert(gw.appId, newId());
    const codes = ["E_RPC_BAD_JSON", "E_RPC_BAD_REQUEST", "E_RPC_WEAK_KEY"];
    await fc.assert(
      fc.asyncProperty(registerBody, fc.boolean(), async (body, viaHeader) => {
        const answer = await rpcRequest(gw.rpcPort, {
          cert,
          body,
          ...(viaHeader
            ? { path: "/prpc/Gateway.RegisterCvm", headers: { "content-type": "application/json" } }
            : {}),
        });
        expectRefused(answer, codes, `body ${body.slice(0, 120)}`);
      }),
      { numRuns: RUNS, seed: 20261206 },
    );
    expect(await snapshot()).toEqual(before);
    expect(gw.alive()).toBe(true);
  });

  it("refuses other content types, methods, paths and an oversized body", {
    timeout: 60_000,
  }, async () => {
    const before = await snapshot();
    const cert = gw.clientCert(gw.appId, newId());
    const body = JSON.stringify({ client_public_key: generateWgKeyPair().publicKey });
    await fc.assert(
      fc.asyncProperty(notJsonType, async (type) => {
        const answer = await rpcRequest(gw.rpcPort, {
          cert,
          body,
          path: "/prpc/Gateway.RegisterCvm",
          headers: type === "" ? {} : { "content-type": type },
        });
        expectRefused(
          answer,
          ["E_RPC_UNSUPPORTED_ENCODING"],
          `content type ${JSON.stringify(type)}`,
        );
      }),
      { numRuns: 100, seed: 7 },
    );
    for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
      // Node's client sends no length for a GET or DELETE body: it would read as a second request.
      const withBody = method === "PUT" || method === "PATCH";
      const answer = await rpcRequest(gw.rpcPort, { cert, method, ...(withBody ? { body } : {}) });
      expectRefused(answer, ["E_RPC_METHOD_NOT_ALLOWED"], method);
    }
    for (const path of ["/", "/prpc/", "/prpc/Gateway.Register", "/prpc/Admin.Status", "/../etc"]) {
      expectRefused(
        await rpcRequest(gw.rpcPort, { cert, body, path }),
        ["E_RPC_UNKNOWN_METHOD"],
        path,
      );
    }
    // Over the 64 KiB limit by its declared length: refused before the body is read.
    const declared = await rpcRequest(gw.rpcPort, {
      cert,
      body: "{",
      headers: { "content-type": "application/json", "content-length": "70000" },
    });
    expectRefused(declared, ["E_RPC_BODY_TOO_LARGE"], "declared length over the limit");
    expect(await snapshot()).toEqual(before);
  });

  it("refuses a key another instance holds, and an instance id claimed by another app (409)", {
    timeout: 60_000,
  }, async () => {
    const before = await snapshot();
    const stolenKey = JSON.stringify({ client_public_key: gw.instanceKey });
    const sameApp = await rpcRequest(gw.rpcPort, {
      cert: gw.clientCert(gw.appId, newId()),
      body: stolenKey,
    });
    expectRefused(sameApp, ["E_REGISTRY_KEY_IN_USE"], "key of another instance, same app");
    const otherApp = await rpcRequest(gw.rpcPort, {
      cert: gw.clientCert(newId(), newId()),
      body: stolenKey,
    });
    expectRefused(otherApp, ["E_REGISTRY_KEY_IN_USE"], "key of another instance, other app");
    const claimed = await rpcRequest(gw.rpcPort, {
      cert: gw.clientCert(newId(), gw.instanceId),
      body: JSON.stringify({ client_public_key: generateWgKeyPair().publicKey }),
    });
    expectRefused(claimed, ["E_REGISTRY_APP_MISMATCH"], "instance id of another app");
    expect(await snapshot()).toEqual(before);
    // The holder is untouched: same address, still served.
    const info = await adminRequest(gw.adminPort, {
      body: JSON.stringify({ id: gw.instanceId }),
      path: "/prpc/Admin.GetInfo",
    });
    expect(JSON.parse(info.text)).toMatchObject({ found: true, info: { ip: gw.instanceIp } });
    await goodRequest(gw);
  });

  it("refuses a missing or untrusted client certificate (401)", async () => {
    const before = await snapshot();
    const body = JSON.stringify({ client_public_key: generateWgKeyPair().publicKey });
    expectRefused(await rpcRequest(gw.rpcPort, { body }), ["E_RPC_NO_CLIENT_CERT"], "no cert");
    const stranger = issueRaTlsCert(createTestCa("someone else's CA"), {
      appInfo: appInfoSpec(gw.appId, newId()),
    });
    const untrusted = await rpcRequest(gw.rpcPort, { cert: stranger, body });
    expectRefused(untrusted, ["E_RPC_CERT_UNTRUSTED"], "untrusted cert");
    expect(await snapshot()).toEqual(before);
  });
});

describe("the admin API", () => {
  it("refuses missing, wrong and malformed credentials with 401, whatever the request", {
    timeout: 120_000,
  }, async () => {
    const before = await snapshot();
    // Printable ASCII: what an HTTP client lets into a header at all.
    const text = fc.stringMatching(/^[\x21-\x7e]{1,120}$/);
    const credentials = fc.oneof(
      fc.constant({}),
      text.map((t) => ({ authorization: `Bearer ${t}` })),
      text.map((t) => ({ "x-admin-token": t })),
      text.map((t) => ({ authorization: `Basic ${Buffer.from(t).toString("base64")}` })),
      fc.constant({ authorization: `Bearer ${ADMIN_TOKEN}x` }),
      fc.constant({ authorization: `Bearer ${ADMIN_TOKEN.slice(1)}` }),
    );
    // Exit and RemoveInstance among them: a credential wrongly let through would show as a
    // gateway gone or an instance removed, not only as a status.
    const paths = fc.constantFrom(
      "/",
      "/metrics",
      "/prpc/Admin.Status",
      "/prpc/Admin.RenewCert",
      "/prpc/Admin.ReloadCert",
      "/prpc/Admin.GetInfo",
      "/prpc/Admin.SetCaa",
      "/prpc/Admin.SetInstanceReady",
      "/prpc/Admin.RemoveInstance",
      "/prpc/Admin.Exit",
    );
    await fc.assert(
      fc.asyncProperty(credentials, paths, adminBody, async (headers, path, body) => {
        // GET for /metrics and the dashboard: a refusal must come from the credentials, not the
        // method.
        const method = path === "/metrics" || path === "/" ? "GET" : "POST";
        const call = { method, path, headers, ...(method === "POST" ? { body } : {}) };
        const answer = await adminRequest(gw.adminPort, call);
        expectRefused(answer, ["E_ADMIN_UNAUTHORIZED"], `${path} ${JSON.stringify(headers)}`);
        expect(answer.status).toBe(401);
      }),
      { numRuns: RUNS, seed: 1207 },
    );
    expect(await snapshot()).toEqual(before);
  });

  it("answers fast-check GetInfo bodies with 200 or 4xx, never 5xx", {
    timeout: 120_000,
  }, async () => {
    const before = await snapshot();
    await fc.assert(
      fc.asyncProperty(adminBody, async (body) => {
        const answer = await adminRequest(gw.adminPort, { body, path: "/prpc/Admin.GetInfo" });
        if (answer.status === 200) {
          expect(JSON.parse(answer.text)).toEqual({ found: false });
          return;
        }
        expectRefused(
          answer,
          ["E_RPC_BAD_JSON", "E_RPC_BAD_REQUEST", "E_RPC_BODY_TOO_LARGE"],
          `body ${body.slice(0, 120)}`,
        );
      }),
      { numRuns: RUNS, seed: 1206 },
    );
    expect(await snapshot()).toEqual(before);
  });
});

describe("slow clients", () => {
  it(`are cut off within ${SLOW_HEADERS_BOUND_MS / 1000} s (headers) and ${SLOW_BODY_BOUND_MS / 1000} s (body)`, {
    timeout: SLOW_BODY_BOUND_MS + 10_000,
  }, async () => {
    const lived = await slow;
    const open = lived.filter((c) => c.ms === undefined).map((c) => c.name);
    expect(open, "slow clients still open at the bound").toEqual([]);
    console.log(
      `slow clients lived ${lived.map((c) => `${c.name}: ${c.ms?.toFixed(0)} ms`).join(", ")}`,
    );
  });

  it("leave the gateway serving, with its descriptors and memory back", {
    timeout: 60_000,
  }, async () => {
    await expectRecovered(gw, base, "RPC and admin bodies");
  });
});
