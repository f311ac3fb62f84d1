/**
 * HAProxy's `show stat` read live and turned into the runtime's snapshot (engine/haproxy/
 * stats.ts): a HAProxy with the engine's names (fe_sni, fe_term, app_<n>, i_<id>, be_node) and
 * one slot per case, traffic for each case, then the counters through the runtime API socket.
 * GATEWAY_WRITE_FIXTURE=1 saves the answer as tests/fixtures/haproxy/show-stat.csv, the
 * sample the unit tests read.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  parseShowStat,
  readShowStat,
  snapshotFromStats,
} from "../../../gateway-runtime/engine/haproxy/stats.js";
import { createCa, issueLeaf } from "../../../testkit/certs.js";
import { until } from "../../../testkit/poll.js";
import { clientHello } from "../../helpers/client-hello.js";
import { type RunningHaproxy, startHaproxy } from "../../helpers/haproxy.js";

const dir = mkdtempSync(join(tmpdir(), "haproxy-stats-"));
const sni = join(dir, "sni.sock");
/** The slots in use and their apps; app_4 is a free slot. */
const SLOTS = new Map([
  ["app_0", "a0a0"], // one live instance
  ["app_1", "b1b1"], // one instance that refuses connections
  ["app_2", "c2c2"], // no instance
  ["app_3", "d3d3"], // its per-app limit reached
]);

let haproxy: RunningHaproxy;
let echo: Server;
const held: Socket[] = [];

/** Sends a ClientHello for `name` (then `extra`) to fe_sni; resolves with what came back. */
function send(name: string, opts: { hold?: boolean; extra?: Buffer } = {}): Promise<Buffer> {
  return clientHello(name).then(
    (hello) =>
      new Promise((resolve) => {
        const sent = Buffer.concat([hello, opts.extra ?? Buffer.alloc(0)]);
        const chunks: Buffer[] = [];
        const s = connect({ path: sni }, () => s.write(sent));
        s.on("error", () => {});
        s.on("data", (d: Buffer) => {
          chunks.push(d);
          if (opts.hold && Buffer.concat(chunks).length >= sent.length) {
            held.push(s);
            resolve(Buffer.concat(chunks));
          }
        });
        s.once("close", () => resolve(Buffer.concat(chunks)));
        // The echo answers everything at once: end after it, as a client done with its request.
        if (!opts.hold) s.on("data", () => Buffer.concat(chunks).length >= sent.length && s.end());
      }),
  );
}

/** A TLS connection terminated by fe_term (through be_term), "hi" echoed back. */
function terminated(ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = tlsConnect({ path: sni, servername: "term.x", ca });
    t.once("secureConnect", () => t.write("hi"));
    t.on("data", (d: Buffer) => {
      resolve(d.toString());
      t.end();
    });
    t.once("error", reject);
  });
}

beforeAll(async () => {
  echo = createServer((s) => {
    s.on("data", (d: Buffer) => s.write(d));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  const live = `127.0.0.1:${(echo.address() as { port: number }).port}`;
  const ca = createCa();
  const leaf = issueLeaf(ca, { sans: ["term.x"] });
  const pem = join(dir, "gateway.pem");
  writeFileSync(pem, readFileSync(leaf.certFile, "utf8") + readFileSync(leaf.keyFile, "utf8"));
  // Port 1 on loopback: nothing listens there, so a connect is refused at once.
  haproxy = await startHaproxy(
    dir,
    `global
  stats socket ${dir}/api.sock level admin
  nbthread 1
defaults
  mode tcp
  timeout connect 200ms
  timeout client 5s
  timeout server 5s
  retries 1
frontend fe_sni
  bind unix@${sni}
  tcp-request inspect-delay 2s
  tcp-request content reject if { req.ssl_sni deny.x }
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend be_term if { req.ssl_sni term.x }
  use_backend app_0 if { req.ssl_sni a0.x }
  use_backend app_1 if { req.ssl_sni b1.x }
  use_backend app_2 if { req.ssl_sni c2.x }
  use_backend app_3 if { req.ssl_sni d3.x }
  default_backend be_node
frontend fe_term
  bind unix@${dir}/term.sock accept-proxy ssl crt ${pem}
  default_backend app_0
backend be_term
  server term unix@${dir}/term.sock send-proxy-v2
backend app_0
  server i_a0a001 ${live}
backend app_1
  server i_b1b101 127.0.0.1:1
backend app_2
backend app_3
  tcp-request content reject
  server i_d3d301 ${live}
backend app_4
backend be_node
  server node unix@${dir}/node.sock send-proxy-v2
`,
    "api.sock",
  );
  const hello = await clientHello("a0.x");
  expect((await send("a0.x")).length).toBe(hello.length);
  expect((await send("a0.x")).length).toBe(hello.length);
  await send("a0.x", { hold: true });
  expect(await terminated(ca.certPem)).toBe("hi");
  // A record after the hello that is not the client's next flight: the handshake fails.
  await send("term.x", { extra: Buffer.from([0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]) });
  for (const name of ["b1.x", "c2.x", "d3.x", "deny.x", "unknown.x"]) {
    expect((await send(name)).length).toBe(0);
  }
  ca.cleanup();
}, 30_000);

afterAll(async () => {
  for (const s of held) s.destroy();
  await haproxy?.stop();
  await new Promise((r) => echo?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe("a live HAProxy's show stat as the runtime's snapshot", () => {
  it("maps each case onto the counters the Node engine keeps", async () => {
    // The sessions that ended are counted once HAProxy has closed them.
    const csv = await until(
      "the closed sessions in show stat",
      async () => {
        const text = await readShowStat(join(dir, "api.sock"));
        const s = snapshotFromStats(parseShowStat(text), SLOTS);
        return s.apps.a0a0?.total === 4 && s.rejected.E_TLS_HANDSHAKE === 1 && text;
      },
      5_000,
      { context: () => haproxy.output() },
    );
    if (process.env.GATEWAY_WRITE_FIXTURE === "1") {
      writeFileSync(new URL("../../fixtures/haproxy/show-stat.csv", import.meta.url), csv);
    }
    const snapshot = snapshotFromStats(parseShowStat(csv), SLOTS);
    expect(Object.keys(snapshot.apps).sort()).toEqual(["a0a0", "b1b1", "c2c2", "d3d3"]);
    expect(snapshot.apps.a0a0).toMatchObject({ active: 1, total: 4, rejected: {} });
    expect(snapshot.apps.a0a0?.bytesToBackend).toBeGreaterThan(0);
    expect(snapshot.apps.b1b1).toMatchObject({ total: 1, rejected: { E_CONNECT_FAILED: 1 } });
    expect(snapshot.apps.c2c2).toMatchObject({ total: 1, rejected: { E_NO_HEALTHY_INSTANCE: 1 } });
    expect(snapshot.apps.d3d3?.rejected).toEqual({ E_LIMIT_APP: 1 });
    expect(snapshot.instances).toEqual({ a0a001: 1 });
    // The failed attempt and its one retry.
    expect(snapshot.connectFailures).toEqual({ b1b101: 2 });
    expect(snapshot.rejected).toEqual({
      E_CONNECT_FAILED: 1,
      E_NO_HEALTHY_INSTANCE: 1,
      E_LIMIT_APP: 1,
      E_LIMIT_IP: 1,
      E_TLS_HANDSHAKE: 1,
    });
  });
});
