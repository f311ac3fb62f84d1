import { createHash, randomBytes } from "node:crypto";
import {
  connect as h2connect,
  createServer as createH2cServer,
  type Http2Server,
  type ServerHttp2Stream,
} from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClientOptions, WebSocket, WebSocketServer } from "ws";
import {
  APP_A,
  APP_B,
  type Backend,
  curl,
  httpBackend,
  type ProxyLab,
  startProxyLab,
  TEST_DOMAIN,
  tcpBackend,
  ENGINES,
} from "./harness.js";
import { tempFile } from "../../../testkit/tmp.js";

describe.each(ENGINES)("on the %s engine", (engine) => {
  let lab: ProxyLab;
  const backends: Backend[] = [];
  let h2Server: Http2Server;
  let wss: WebSocketServer;

  beforeAll(async () => {
    lab = await startProxyLab({}, { engine });
    await lab.addInstance("aa01", APP_A, "127.0.1.2");
    await lab.addInstance("bb01", APP_B, "127.0.1.4");
    backends.push(
      await httpBackend("a-80", "127.0.1.2", 80),
      await httpBackend("a-8080", "127.0.1.2", 8080),
      await httpBackend("b-8080", "127.0.1.4", 8080),
    );
    h2Server = createH2cServer();
    // @types/node 26 types the event with the session-level Http2Stream; a server stream it is.
    h2Server.on("stream", (stream: ServerHttp2Stream, headers) => {
      stream.respond({
        ":status": 200,
        "content-type": "application/grpc",
        "x-path": String(headers[":path"]),
      });
      stream.end("h2-ok");
    });
    await new Promise<void>((r) => h2Server.listen(50051, "127.0.1.2", r));
    wss = new WebSocketServer({ host: "127.0.1.2", port: 8765 });
    wss.on("connection", (ws) => ws.on("message", (data, binary) => ws.send(data, { binary })));
    await new Promise<void>((r) => wss.once("listening", r));
  });

  afterAll(async () => {
    for (const b of backends) await b.close();
    await new Promise<void>((r) => h2Server.close(() => r()));
    await new Promise<void>((r) => wss.close(() => r()));
    await lab?.close();
  });

  describe("TLS termination through the proxy, with real clients", () => {
    it("<app-id>.<base> reaches the app's port 80 over HTTP/1.1 (curl)", async () => {
      const r = await curl(lab, `${APP_A}.${TEST_DOMAIN}`, "/hello");
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(/^a-80 GET \/hello 0 /);
    });

    it("<app-id>-<port> reaches that port, and apps stay apart", async () => {
      expect((await curl(lab, `${APP_A}-8080.${TEST_DOMAIN}`)).stdout).toMatch(/^a-8080 GET \/ /);
      expect((await curl(lab, `${APP_B}-8080.${TEST_DOMAIN}`)).stdout).toMatch(/^b-8080 GET \/ /);
    });

    it("<instance-id>-<port> reaches that instance", async () => {
      expect((await curl(lab, `aa01-8080.${TEST_DOMAIN}`)).stdout).toMatch(/^a-8080 /);
    });

    it("keeps one backend connection for a keep-alive client", async () => {
      const before = backends[1]?.accepted ?? 0;
      const host = `${APP_A}-8080.${TEST_DOMAIN}`;
      const r = await curl(lab, host, "/one", [
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{num_connects}\n",
        `https://${host}:${lab.port}/two`,
      ]);
      expect(r.code).toBe(0);
      expect(r.stdout.trim().split("\n")).toEqual(["1", "0"]);
      expect((backends[1]?.accepted ?? 0) - before).toBe(1);
    });

    it("carries a 100 MB request body byte for byte", async () => {
      const body = randomBytes(100 * 1024 * 1024);
      const file = tempFile("body-", "body.bin", body);
      const sha = createHash("sha256").update(body).digest("hex");
      const r = await curl(lab, `${APP_A}-8080.${TEST_DOMAIN}`, "/upload", [
        "--data-binary",
        `@${file}`,
        "-H",
        "content-type: application/octet-stream",
      ]);
      expect(r.stdout.trim()).toBe(`a-8080 POST /upload ${body.length} ${sha}`);
    }, 60_000);

    it("does not offer h2 on a plain host, even to a client that wants it", async () => {
      const r = await curl(lab, `${APP_A}-8080.${TEST_DOMAIN}`, "/", [
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
      ]);
      expect(r.stdout).toBe("1.1");
    });

    it("<app-id>-<port>g negotiates h2 and carries gRPC-style streams (node:http2 client)", async () => {
      const session = h2connect(`https://${APP_A}-50051g.${TEST_DOMAIN}:${lab.port}`, {
        ca: lab.ca.certPem,
        host: "127.0.0.1",
        servername: `${APP_A}-50051g.${TEST_DOMAIN}`,
      } as Parameters<typeof h2connect>[1]);
      try {
        const alpn = await new Promise<string | false | undefined>((resolve, reject) => {
          session.once("connect", () => resolve(session.alpnProtocol));
          session.once("error", reject);
        });
        expect(alpn).toBe("h2");
        const results = await Promise.all(
          [1, 2, 3].map(
            (n) =>
              new Promise<string>((resolve, reject) => {
                const req = session.request({
                  ":method": "POST",
                  ":path": `/pkg.Svc/Call${n}`,
                  "content-type": "application/grpc",
                });
                let data = "";
                let path = "";
                req.on("response", (h) => (path = String(h["x-path"])));
                req.on("data", (d: Buffer) => (data += d.toString()));
                req.on("end", () => resolve(`${path} ${data}`));
                req.on("error", reject);
                req.end();
              }),
          ),
        );
        expect(results).toEqual([
          "/pkg.Svc/Call1 h2-ok",
          "/pkg.Svc/Call2 h2-ok",
          "/pkg.Svc/Call3 h2-ok",
        ]);
      } finally {
        session.close();
      }
    });

    it("curl speaks HTTP/2 to a g host", async () => {
      const r = await curl(lab, `${APP_A}-50051g.${TEST_DOMAIN}`, "/x", [
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
      ]);
      expect(r.stdout).toBe("2");
    });

    it("a WebSocket echoes through termination", async () => {
      const host = `${APP_A}-8765.${TEST_DOMAIN}`;
      // ws hands these options to tls.connect, whose `servername` its types do not list.
      const tlsOptions = { ca: lab.ca.certPem, servername: host, headers: { host } };
      const ws = new WebSocket(`wss://127.0.0.1:${lab.port}/echo`, tlsOptions as ClientOptions);
      const messages = await new Promise<string[]>((resolve, reject) => {
        const got: string[] = [];
        ws.once("open", () => {
          ws.send("hello");
          ws.send(Buffer.from("binary"));
        });
        ws.on("message", (data) => {
          got.push(data.toString());
          if (got.length === 2) resolve(got);
        });
        ws.once("error", reject);
      });
      ws.close();
      expect(messages).toEqual(["hello", "binary"]);
    });

    it("passes raw TCP after termination (the -22 form) byte for byte", async () => {
      const echo = await tcpBackend("127.0.1.4", 2222, (s) => s.pipe(s));
      try {
        const { connect } = await import("node:tls");
        const socket = connect({
          host: "127.0.0.1",
          port: lab.port,
          servername: `${APP_B}-2222.${TEST_DOMAIN}`,
          ca: lab.ca.certPem,
        });
        const payload = randomBytes(256 * 1024);
        const back = await new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          let n = 0;
          socket.once("secureConnect", () => socket.end(payload));
          socket.on("data", (d: Buffer) => {
            chunks.push(d);
            n += d.length;
            if (n >= payload.length) resolve(Buffer.concat(chunks));
          });
          socket.once("error", reject);
        });
        socket.destroy();
        expect(back.equals(payload)).toBe(true);
      } finally {
        await echo.close();
      }
    });
  });

  describe("half-close through termination", () => {
    it("a client that sends its request and closes its side at once still gets the whole reply", async () => {
      const { connect } = await import("node:tls");
      const host = `${APP_A}-8080.${TEST_DOMAIN}`;
      const replies = await Promise.all(
        Array.from(
          { length: 20 },
          (_, k) =>
            new Promise<string>((resolve, reject) => {
              const s = connect({
                host: "127.0.0.1",
                port: lab.port,
                servername: host,
                ca: lab.ca.certPem,
              });
              let text = "";
              s.on("data", (d: Buffer) => (text += d.toString()));
              s.once("secureConnect", () =>
                s.end(`GET /half/${k} HTTP/1.1\r\nhost: ${host}\r\n\r\n`),
              );
              s.once("close", () => resolve(text));
              s.once("error", reject);
              setTimeout(() => s.destroy(), 5_000);
            }),
        ),
      );
      for (const [k, reply] of replies.entries())
        expect(reply).toMatch(new RegExp(`a-8080 GET /half/${k} 0 `));
    });
  });
});
