/**
 * The slow path behind a real HAProxy: HAProxy hands a connection to the Node data plane's
 * socket with `send-proxy-v2`, as the engine's `be_node` does, and the client's address arrives
 * at the backend. The client reaches HAProxy over a Unix socket with a PROXY header of its own
 * (`accept-proxy`), which stands in for a TCP client at that address without a TCP port.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FILES } from "../../../gateway-runtime/engine/haproxy/layout.js";
import { decodeProxyV2, encodeProxyV2 } from "../../../gateway-runtime/proxy/proxy-protocol.js";
import { until } from "../../../testkit/poll.js";
import { type RunningHaproxy, startHaproxy } from "../../helpers/haproxy.js";
import {
  APP_A,
  type Backend,
  type ProxyLab,
  startProxyLab,
  TEST_DOMAIN,
  tcpBackend,
} from "../proxy/harness.js";

const dir = mkdtempSync(join(tmpdir(), "haproxy-slow-"));
const received: Buffer[] = [];
let lab: ProxyLab;
let haproxy: RunningHaproxy;
let backend: Backend;

beforeAll(async () => {
  lab = await startProxyLab(
    { "core.proxy.app_overrides": { [APP_A]: { proxy_protocol: true } } },
    { slowPathSocket: join(dir, FILES.slowPath) },
  );
  lab.addInstance("aa08", APP_A, "127.0.8.2");
  backend = await tcpBackend("127.0.8.2", 8080, (s) => {
    s.on("data", (d: Buffer) => {
      received.push(d);
      s.write("ok\n");
    });
    s.on("error", () => {});
  });
  haproxy = await startHaproxy(
    dir,
    `global
  nbthread 1
defaults
  mode tcp
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend fe_sni
  bind unix@${dir}/sni.sock accept-proxy
  tcp-request inspect-delay 2s
  tcp-request content accept if { req.ssl_hello_type 1 }
  default_backend be_node
backend be_node
  server node unix@${dir}/${FILES.slowPath} send-proxy-v2
`,
    "sni.sock",
  );
});

afterAll(async () => {
  await haproxy?.stop();
  await backend?.close();
  await lab?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("HAProxy's be_node to the slow path", () => {
  it("carries the client's address to the backend, the connection terminated as on :443", async () => {
    const raw = connect({ path: join(dir, "sni.sock") });
    raw.on("error", () => {});
    raw.write(
      encodeProxyV2({
        sourceAddress: "203.0.113.21",
        sourcePort: 41_000,
        destAddress: "198.51.100.1",
        destPort: 443,
      }),
    );
    const tls = tlsConnect({
      socket: raw,
      servername: `${APP_A}-8080.${TEST_DOMAIN}`,
      ca: lab.ca.certPem,
    });
    tls.on("error", () => {});
    tls.once("secureConnect", () => tls.write("hello\n"));
    const bytes = await until(
      "the backend's bytes",
      () => {
        const all = Buffer.concat(received);
        return all.toString().endsWith("hello\n") && all;
      },
      5_000,
      { context: () => haproxy.output() },
    );
    tls.destroy();
    const header = decodeProxyV2(bytes);
    expect(header).toMatchObject({ sourceAddress: "203.0.113.21", sourcePort: 41_000 });
    expect(bytes.subarray(header?.headerLength).toString()).toBe("hello\n");
    expect(lab.plane.proxy.stats.rejections().size).toBe(0);
  });
});
