/**
 * dstack's seed layout: `rpc_domain = gateway.<zone>` beside `base_domain = app.<zone>`, so the
 * wildcard does not cover the name CVMs register at. The certificate manager orders one
 * certificate with that name too (DNS-01 in the zone above both, pebble validating against
 * BIND), pins CAA on it, and the RPC server serves a chain a CVM verifies for rpc_domain.
 */
import { request } from "node:https";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CertificateManager } from "../../../gateway-runtime/certs/index.js";
import { RpcServer } from "../../../gateway-runtime/rpc/index.js";
import { BASE, type CertLab, NAMES, startCertLab } from "./harness.js";

const ZONE = "test.example";
const RPC = `gateway.${ZONE}`;

let lab: CertLab;
let manager: CertificateManager;
let rpc: RpcServer;
let rootPem: string;

beforeAll(async () => {
  lab = await startCertLab({ zone: ZONE });
  rootPem = await lab.pebble.rootPem();
  manager = lab.manager(lab.workdir(), { "core.rpc_domain": RPC });
  await manager.start();
  expect((await manager.checkNow()).action).toBe("renewed");
  rpc = await RpcServer.start({
    handler: {
      register: () => Promise.reject(new Error("not called")),
      info: () => ({
        base_domain: BASE,
        external_port: 443,
        app_address_ns_prefix: "p",
        version: "0",
      }),
    },
    certFile: manager.certFile,
    keyFile: manager.keyFile,
    address: "127.0.0.1",
    port: 0,
  });
}, 120_000);

afterAll(async () => {
  await rpc?.close();
  await lab?.close();
});

/** The CAA set at `name`; dig gives up after 2 s, which a loaded machine can take: asked again. */
async function caa(name: string): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const records = await lab.bind.dig(name, "CAA");
    if (records.length > 0 || attempt === 5) return records.sort();
  }
}

/** A TLS handshake that verifies the chain against pebble's root and the name against `servername`. */
function verifiedSerial(servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: rpc.port, servername, ca: rootPem });
    s.once("secureConnect", () => {
      resolve(s.getPeerCertificate().serialNumber.toUpperCase());
      s.destroy();
    });
    s.once("error", reject);
  });
}

describe("rpc_domain outside the base domain", () => {
  it("is a name of the one certificate, next to the wildcard and the base", async () => {
    const info = await manager.whenReady();
    expect([...info.names].sort()).toEqual([...NAMES, RPC].sort());
  });

  it("gets CAA records of its own, pinned to the account and dns-01 like the base domain's", async () => {
    const base = await caa(BASE);
    expect(base.some((r) => r.includes("validationmethods=dns-01"))).toBe(true);
    expect(await caa(RPC)).toEqual(base);
  });

  it("is what the RPC port serves: a CVM verifies the chain for rpc_domain", async () => {
    const serial = rpc.certificate().serial.toUpperCase();
    expect(await verifiedSerial(RPC)).toBe(serial);
    expect(await verifiedSerial(`abc.${BASE}`)).toBe(serial); // the proxy's names, same pair
    await expect(verifiedSerial(`other.${ZONE}`)).rejects.toThrow(/altnames/);
  });

  it("answers dstack's GET /health over that verified connection", async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: rpc.port, path: "/health", servername: RPC, ca: rootPem },
        (res) => {
          let body = "";
          res.on("data", (c: Buffer) => {
            body += c.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(answer).toEqual({ status: 200, body: "OK" });
  });
});
