/**
 * Every route form through the HAProxy engine, with the Node engine's behaviour
 * (ARCHITECTURE.md "SNI grammar"): the CVM port from the name, ALPN h2 only on `g` names,
 * passthrough for `s`, instance ids, custom domains, unknown names to the slow path with the
 * client's address, the port-80 redirect, and the per-app PROXY v2 header.
 */
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect, createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../../../testkit/poll.js";
import {
  type Backend,
  backend,
  type Lab,
  loopbackIp,
  request,
  slowPath,
  startLab,
  TEST_DOMAIN,
} from "./harness.js";

const APP = "a1a1a1";
const APP_PP = "c3c3c3";
const INSTANCE_1 = "0101";
const INSTANCE_2 = "0202";
const INSTANCE_PP = "0303";

describe("HAProxy engine: route forms", () => {
  let lab: Lab;
  const backends: Backend[] = [];
  const ip1 = loopbackIp();
  const ip2 = loopbackIp();
  const ipPp = loopbackIp();

  beforeAll(async () => {
    lab = await startLab({
      "core.proxy.app_overrides": { [APP_PP]: { proxy_protocol: true } },
    });
    const tls = {
      cert: readFileSync(lab.leaf.certFile, "utf8"),
      key: readFileSync(lab.leaf.keyFile, "utf8"),
    };
    for (const [name, ip] of [
      ["one", ip1],
      ["two", ip2],
    ] as const) {
      for (const port of [80, 8080, 22]) backends.push(await backend(name, ip, port));
      backends.push(await backend(`${name}-tls`, ip, 443, tls));
      backends.push(await backend(`${name}-tls`, ip, 8443, tls));
    }
    backends.push(await backend("pp", ipPp, 80));
    backends.push(await slowPath(lab));
    // One instance first: the app's forms must reach exactly it.
    await lab.add(INSTANCE_1, APP, ip1);
    await lab.add(INSTANCE_PP, APP_PP, ipPp);
  });

  afterAll(async () => {
    await lab?.close();
    for (const b of backends) await b.close();
  });

  const at = (label: string) => `${label}.${TEST_DOMAIN}`;

  it("terminates <id> to port 80 and <id>-<port> to that port, http/1.1 only", async () => {
    const plain = await request(lab, at(APP), { alpn: ["h2", "http/1.1"] });
    expect(plain.text).toBe("one 80 pp=- ping");
    expect(plain.alpn).toBe("http/1.1");
    expect((await request(lab, at(`${APP}-8080`))).text).toBe("one 8080 pp=- ping");
    expect((await request(lab, at(`${APP}-22`))).text).toBe("one 22 pp=- ping");
    // Only h2 offered on a non-g name: no ALPN answer, the handshake still completes.
    expect((await request(lab, at(APP), { alpn: ["h2"] })).alpn).toBe(false);
  });

  it("offers h2 only on <id>g and <id>-<port>g", async () => {
    const g = await request(lab, at(`${APP}g`), { alpn: ["h2", "http/1.1"] });
    expect(g.alpn).toBe("h2");
    expect(g.text).toBe("one 80 pp=- ping");
    const gPort = await request(lab, at(`${APP}-8080g`), { alpn: ["h2", "http/1.1"] });
    expect(gPort.alpn).toBe("h2");
    expect(gPort.text).toBe("one 8080 pp=- ping");
    expect((await request(lab, at(`${APP}-g`), { alpn: ["http/1.1"] })).text).toBe(
      "one 80 pp=- ping",
    );
  });

  it("passes <id>s and <id>-<port>s through to a backend that terminates TLS itself", async () => {
    expect((await request(lab, at(`${APP}s`))).text).toBe("one-tls 443 pp=- ping");
    expect((await request(lab, at(`${APP}-8443s`))).text).toBe("one-tls 8443 pp=- ping");
    expect((await request(lab, at(`${APP}-s`))).text).toBe("one-tls 443 pp=- ping");
  });

  it("routes an instance id to that instance, whatever the app's balance", async () => {
    await lab.add(INSTANCE_2, APP, ip2);
    for (let i = 0; i < 4; i++) {
      expect((await request(lab, at(INSTANCE_2))).text).toBe("two 80 pp=- ping");
      expect((await request(lab, at(`${INSTANCE_1}-8080`))).text).toBe("one 8080 pp=- ping");
      expect((await request(lab, at(`${INSTANCE_2}s`))).text).toBe("two-tls 443 pp=- ping");
    }
    await lab.remove(INSTANCE_2);
  });

  it("passes a custom domain from the custom map through to <app>:<port>", async () => {
    lab.engine.reconciler.setCustomDomain("shop.example.org", `${APP}:8443`);
    await lab.settle();
    expect((await request(lab, "shop.example.org")).text).toBe("one-tls 8443 pp=- ping");
  });

  it("keeps a custom domain's answer for its TTL, then sends the name to the slow path again", async () => {
    const client = loopbackIp();
    lab.engine.installCustomDomain({ name: "blog.example.org", appId: APP, port: 443, ttlMs: 600 });
    await lab.settle();
    expect((await request(lab, "blog.example.org")).text).toBe("one-tls 443 pp=- ping");
    await until(
      "the answer to expire",
      async () =>
        (await request(lab, "blog.example.org", { localAddress: client })).text ===
        `slow ${client}`,
      5_000,
    );
  });

  it("sends unknown names, the gateway's own and bad labels to the slow path with the client's address", async () => {
    const client = loopbackIp();
    for (const name of [
      at("ffff"),
      at("health"),
      at(`${APP}-0`),
      "other.example.org",
      at(`x.${APP}`),
    ]) {
      const answer = await request(lab, name, { localAddress: client });
      expect(answer.text, name).toBe(`slow ${client}`);
    }
  });

  // HAProxy 2.6 cannot tell whether a ClientHello over several records is whole (it counts
  // the later records' headers as the hello's bytes), so fe_sni sends such a connection to
  // the Node slow path (render-routes.ts), which serves it as the Node engine does.
  it("sends a ClientHello split across two TLS records to the slow path, with the client's address", async () => {
    const client = loopbackIp();
    // Between the TLS client and HAProxy: the first record (the ClientHello) re-framed as two.
    const splitter = createServer((inner) => {
      const outer = connect({ host: "127.0.0.1", port: lab.port, localAddress: client });
      inner.once("data", (first: Buffer) => {
        const body = first.subarray(5, 5 + first.readUInt16BE(3));
        const half = Math.floor(body.length / 2);
        const record = (part: Buffer) => {
          const head = Buffer.from(first.subarray(0, 5));
          head.writeUInt16BE(part.length, 3);
          return Buffer.concat([head, part]);
        };
        const rest = first.subarray(5 + body.length);
        outer.write(
          Buffer.concat([record(body.subarray(0, half)), record(body.subarray(half)), rest]),
        );
        inner.pipe(outer).pipe(inner);
      });
      inner.on("error", () => outer.destroy());
      outer.on("error", () => inner.destroy());
    });
    await new Promise<void>((resolve) => splitter.listen(0, "127.0.0.1", resolve));
    const { port } = splitter.address() as { port: number };
    try {
      const answer = await request({ ...lab, port }, at(APP));
      expect(answer.text).toBe(`slow ${client}`);
    } finally {
      splitter.close();
    }
  });

  it("sends PROXY v2 with the client's address to an app that asks for it", async () => {
    const client = loopbackIp();
    const answer = await request(lab, at(APP_PP), { localAddress: client });
    expect(answer.text).toBe(`pp 80 pp=${client} ping`);
    const direct = await request(lab, at(INSTANCE_PP), { localAddress: client });
    expect(direct.text).toBe(`pp 80 pp=${client} ping`);
    expect((await request(lab, at(APP))).text).toBe("one 80 pp=- ping");
  });

  it("redirects plain HTTP on the http port to https with a 308", async () => {
    const { status, location } = await new Promise<{ status: number; location: string }>(
      (resolve, reject) => {
        const req = httpRequest(
          {
            host: "127.0.0.1",
            port: lab.httpPort,
            path: "/a/b?c=1",
            headers: { host: `${APP}.${TEST_DOMAIN.toUpperCase()}.:80` },
          },
          (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0, location: String(res.headers.location) });
          },
        );
        req.once("error", reject);
        req.end();
      },
    );
    expect(status).toBe(308);
    expect(location).toBe(`https://${APP}.${TEST_DOMAIN}:${lab.port}/a/b?c=1`);
  });
});
