// The demo services of a lab CVM: HTTP (with a WebSocket echo) on 80 and 8080, plain HTTP/2
// (gRPC-style) on 50051, TLS with the CVM's own certificate on 443 and 8443 (for passthrough),
// and a TLS echo on 9443 that keeps the connection (the rollout tests' passthrough streams).
// Every answer names the instance, so tests see where a connection landed.
import { readFileSync } from "node:fs";
import { createServer as createHttp } from "node:http";
import { createServer as createH2, type ServerHttp2Stream } from "node:http2";
import { createServer as createTls } from "node:tls";
import { WebSocketServer } from "ws";

const [instance = "unknown", certFile = "", keyFile = ""] = process.argv.slice(2);

function http(port: number): void {
  const server = createHttp((req, res) => {
    let bytes = 0;
    req.on("data", (d: Buffer) => (bytes += d.length));
    req.on("end", () => res.end(`${instance} ${port} ${req.method} ${req.url} ${bytes}\n`));
  });
  new WebSocketServer({ server }).on("connection", (ws) =>
    ws.on("message", (data, binary) => ws.send(data, { binary })),
  );
  server.listen(port, "0.0.0.0");
}

http(80);
http(8080);

const h2 = createH2();
h2.on("stream", (stream: ServerHttp2Stream, headers) => {
  stream.respond({ ":status": 200, "content-type": "application/grpc", "x-instance": instance });
  stream.end(`${instance} h2 ${headers[":path"]}\n`);
});
h2.listen(50051, "0.0.0.0");

const tls = { cert: readFileSync(certFile), key: readFileSync(keyFile) };
for (const port of [443, 8443]) {
  createTls(tls, (s) => {
    s.on("error", () => {});
    s.on("data", (d: Buffer) =>
      s.end(`${instance} tls ${port} ${s.servername ?? "-"}: ${d.toString().trim()}\n`),
    );
  }).listen(port, "0.0.0.0");
}
createTls(tls, (s) => {
  s.on("error", () => {});
  s.pipe(s);
}).listen(9443, "0.0.0.0");
process.stdout.write(`demo services of ${instance} up\n`);
