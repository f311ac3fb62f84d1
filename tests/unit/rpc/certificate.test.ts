import { copyFileSync } from "node:fs";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RpcServer } from "../../../gateway-runtime/rpc/index.js";
import { createCa, issueLeaf, type TestCa } from "../../../testkit/certs.js";
import { SERVERNAME } from "./client.js";

/** The RPC server loads its certificate with the same checks as the TLS proxy (certs/pair.ts). */
let ca: TestCa;
beforeAll(() => {
  ca = createCa();
});
afterAll(() => ca.cleanup());

const handler = {
  register: () => Promise.reject(new Error("not called")),
  info: () => ({ base_domain: "x", external_port: 443, app_address_ns_prefix: "p", version: "0" }),
};
const start = (files: { certFile: string; keyFile: string }) =>
  RpcServer.start({ handler, ...files, address: "127.0.0.1", port: 0 });

describe("the RPC server's certificate", () => {
  it("refuses to start with a key that is not the certificate's, naming the problem (E_CERT_LOAD)", async () => {
    const a = issueLeaf(ca, { sans: [SERVERNAME] });
    const b = issueLeaf(ca, { sans: [SERVERNAME] });
    const failure = start({ certFile: a.certFile, keyFile: b.keyFile });
    await expect(failure).rejects.toMatchObject({ code: "E_CERT_LOAD" });
    await expect(failure).rejects.toThrow(/private key does not match certificate/);
  });

  it("refuses an expired certificate", async () => {
    const old = issueLeaf(ca, { sans: [SERVERNAME], days: -1 });
    await expect(start(old)).rejects.toThrow(/expired at/);
  });

  it("a reload with a bad pair fails and keeps serving the old certificate", async () => {
    const good = issueLeaf(ca, { sans: [SERVERNAME] });
    const server = await start({ ...good });
    try {
      const wrongKey = issueLeaf(ca, { sans: [SERVERNAME] });
      const files = server as unknown as { reloadCertificate(): Promise<void> };
      copyFileSync(wrongKey.keyFile, good.keyFile);
      await expect(files.reloadCertificate()).rejects.toMatchObject({ code: "E_CERT_LOAD" });
      const served = await new Promise<string>((resolve, reject) => {
        const s = connect({
          host: "127.0.0.1",
          port: server.port,
          servername: SERVERNAME,
          ca: ca.certPem,
        });
        s.once("secureConnect", () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.destroy();
        });
        s.once("error", reject);
      });
      expect(served).toBe(good.serial);
    } finally {
      await server.close();
    }
  });
});
