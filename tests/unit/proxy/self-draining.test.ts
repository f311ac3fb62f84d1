/** `health.<base>` while this node drains: 503, so a health-checked front door takes it out. */
import { request } from "node:http";
import { createServer, type Server } from "node:net";
import type { TLSSocket } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { DrainingFlag, SelfService } from "../../../gateway-runtime/proxy/self.js";

let server: Server | undefined;
afterEach(() => server?.close());

/** The self service behind a plain loopback socket (the proxy hands it terminated TLS). */
async function serve(self: SelfService, name: "health" | "gateway"): Promise<number> {
  server = createServer((socket) => self.serve(name, socket as unknown as TLSSocket));
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

const status = (port: number, path: string) =>
  new Promise<number>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });

describe("health name while draining", () => {
  it("answers 503 on health.<base> while the flag is set, 200 again after", async () => {
    const draining = new DrainingFlag();
    const self = new SelfService({ accountUrl: "", workdir: "/nonexistent", draining });
    const port = await serve(self, "health");
    expect(await status(port, "/health")).toBe(200);
    draining.set(true);
    expect(await status(port, "/")).toBe(503);
    expect(await status(port, "/health")).toBe(503);
    draining.set(false);
    expect(await status(port, "/health")).toBe(200);
    self.close();
  });

  it("leaves gateway.<base>/health at 200: it says the process lives, not that it takes traffic", async () => {
    const draining = new DrainingFlag();
    draining.set(true);
    const self = new SelfService({ accountUrl: "", workdir: "/nonexistent", draining });
    expect(await status(await serve(self, "gateway"), "/health")).toBe(200);
    self.close();
  });
});
