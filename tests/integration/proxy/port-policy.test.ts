import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeProxyV2 } from "../../../gateway-runtime/proxy/proxy-protocol.js";
import type { PortPolicy } from "../../../gateway-runtime/registry/store.js";
import {
  ENGINES,
  type Backend,
  type ProxyLab,
  startProxyLab,
  TEST_DOMAIN,
  tcpBackend,
} from "./harness.js";

// One app whose instance reported a restricted policy: 8080 open with a PROXY header, 9090
// open without one; 7070 has a listener too, but the policy keeps it closed.
describe.each(ENGINES)("on the %s engine", (engine) => {
  const APP = "c0ffee01";
  const POLICY: PortPolicy = {
    restrict_mode: true,
    ports: [
      { port: 8080, pp: true },
      { port: 9090, pp: false },
    ],
  };
  let lab: ProxyLab;
  const backends: Backend[] = [];
  const firstBytes = new Map<number, Buffer[]>();

  beforeAll(async () => {
    lab = await startProxyLab({}, { engine });
    lab.directory.upsert({
      id: "cc01",
      appId: APP,
      ip: "127.0.5.2",
      lastHandshakeMs: Date.now(),
      portPolicy: POLICY,
    });
    for (const port of [7070, 8080, 9090]) {
      firstBytes.set(port, []);
      backends.push(
        await tcpBackend("127.0.5.2", port, (s) => {
          s.once("data", (d: Buffer) => {
            firstBytes.get(port)?.push(d);
            s.end("ok\n");
          });
          s.on("error", () => {});
        }),
      );
    }
  });

  afterAll(async () => {
    for (const b of backends) await b.close();
    await lab?.close();
  });

  /** One terminated connection to `<app>-<port>`: what came back, or the error. */
  function call(port: number): Promise<string> {
    return new Promise((resolve) => {
      const servername = `${APP}-${port}.${TEST_DOMAIN}`;
      const s = tlsConnect({ port: lab.port, host: "127.0.0.1", servername, ca: lab.ca.certPem });
      let got = "";
      s.on("secureConnect", () => s.write("hello"));
      s.on("data", (d: Buffer) => {
        got += d.toString();
      });
      s.on("close", () => resolve(got));
      s.on("error", (e) => resolve(`error: ${e.message}`));
      s.setTimeout(5000, () => s.destroy());
    });
  }

  describe("the port policy an instance reported", () => {
    it("closes a port it does not list before dialling, and counts why", async () => {
      expect(await call(7070)).not.toBe("ok\n");
      expect(firstBytes.get(7070)).toEqual([]);
      expect(lab.plane.proxy.stats.app(APP)?.rejected.get("E_PORT_NOT_ALLOWED")).toBe(1);
    });

    it("sends a PROXY v2 header to a pp port, and none to the others, whatever the config says", async () => {
      expect(lab.config.core.proxy.proxy_protocol).toBe(false);
      expect(await call(8080)).toBe("ok\n");
      const withHeader = firstBytes.get(8080)?.[0] ?? Buffer.alloc(0);
      const header = decodeProxyV2(withHeader);
      expect(header).toMatchObject({ sourceAddress: "127.0.0.1", destPort: lab.port });
      expect(withHeader.subarray(header?.headerLength).toString()).toBe("hello");
      expect(await call(9090)).toBe("ok\n");
      expect(firstBytes.get(9090)?.[0]?.toString()).toBe("hello");
    });

    it("without a reported policy, every port is open as the config says", async () => {
      lab.directory.upsert({
        id: "cc01",
        appId: APP,
        ip: "127.0.5.2",
        lastHandshakeMs: Date.now(),
      });
      expect(await call(7070)).toBe("ok\n");
      expect(firstBytes.get(7070)?.[0]?.toString()).toBe("hello");
    });
  });
});
