/**
 * Scenario (g) client: opens `--count` TLS connections (at most `--parallel` handshakes at a
 * time), sends one keep-alive request on each and reads the answer, then leaves them idle.
 * Prints `{"open", "failed", "done": true}` once every attempt settled, then the open count every
 * 500 ms, so the bench can check that none was dropped. SIGTERM closes all and exits.
 *
 *   node bench/.build/idle-client.mjs --port N --servername NAME --count 5000 [--groups LIST]
 *
 * `--groups` (the TLS key-agreement groups offered, first one with a key share) defaults to
 * X25519, P-256, P-384: what h2load and wrk (OpenSSL 3.0) offer in the other scenarios, so (g)
 * is the same handshake for every target whichever node runs this client. Node's own default on
 * OpenSSL 3.5 adds an X25519MLKEM768 key share, a ClientHello 1.2 KiB longer.
 */
import { connect, type TLSSocket } from "node:tls";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    servername: { type: "string" },
    count: { type: "string", default: "5000" },
    parallel: { type: "string", default: "64" },
    timeout: { type: "string", default: "10000" },
    groups: { type: "string", default: "X25519:P-256:P-384" },
  },
});
const port = Number(values.port);
const servername = values.servername ?? "";
const count = Number(values.count);
const parallel = Number(values.parallel);
const timeoutMs = Number(values.timeout);
const ecdhCurve = values.groups;
if (!(port > 0) || servername === "" || !(count > 0) || !(parallel > 0)) {
  process.stderr.write(
    "usage: idle-client --port N --servername NAME [--count N] [--parallel N]\n",
  );
  process.exit(64);
}

const sockets = new Set<TLSSocket>();
let open = 0;
let failed = 0;
let started = 0;
let settled = 0;
const request = `GET / HTTP/1.1\r\nHost: ${servername}\r\n\r\n`;

/** One connection: handshake, one request, the whole answer; then it stays open, idle. */
function openOne(): Promise<void> {
  return new Promise((resolve) => {
    let ready = false;
    let done = false;
    let buffered = "";
    const socket = connect({
      host: "127.0.0.1",
      port,
      servername,
      rejectUnauthorized: false,
      ecdhCurve,
    });
    sockets.add(socket);
    const timer = setTimeout(() => socket.destroy(new Error("timeout")), timeoutMs);
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (ok) open++;
      else failed++;
      resolve();
    };
    socket.once("secureConnect", () => socket.write(request));
    socket.on("data", (chunk: Buffer) => {
      if (ready) return;
      buffered += chunk.toString("latin1");
      const head = buffered.indexOf("\r\n\r\n");
      if (head === -1) return;
      const length = Number(/content-length:\s*(\d+)/i.exec(buffered.slice(0, head))?.[1] ?? 0);
      if (buffered.length - head - 4 < length) return;
      ready = true;
      buffered = "";
      finish(true);
    });
    socket.on("error", () => {});
    socket.once("close", () => {
      sockets.delete(socket);
      if (ready) open--;
      else finish(false);
    });
  });
}

async function worker(): Promise<void> {
  while (started < count) {
    started++;
    await openOne();
    settled++;
  }
}

const report = (extra: object = {}): void => {
  process.stdout.write(`${JSON.stringify({ open, failed, ...extra })}\n`);
};

process.once("SIGTERM", () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});

await Promise.all(Array.from({ length: Math.min(parallel, count) }, () => worker()));
report({ done: true, settled });
setInterval(() => report(), 500);
