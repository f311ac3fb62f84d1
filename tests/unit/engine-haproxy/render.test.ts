/**
 * The rendered haproxy.cfg: what each `core.proxy` setting becomes, and that HAProxy itself
 * (`haproxy -c`) accepts the file with every optional part switched on.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { FILES, MAPS } from "../../../gateway-runtime/engine/haproxy/layout.js";
import {
  digestOf,
  type RenderInput,
  renderConfig,
  slotsOf,
  structureDigest,
} from "../../../gateway-runtime/engine/haproxy/render.js";
import { createCa, issueLeaf } from "../../../testkit/certs.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";

function proxyWith(settings: Record<string, unknown> = {}) {
  let raw = minimalConfig();
  for (const [path, value] of Object.entries(settings)) raw = withKey(raw, path, value);
  return parseGatewayConfig(raw, "render test").core.proxy;
}

const DIR = "/run/gw/haproxy";
const input = (settings: Record<string, unknown> = {}, more: Partial<RenderInput> = {}) => ({
  proxy: proxyWith(settings),
  dir: DIR,
  slots: 4,
  ...more,
});

describe("renderConfig", () => {
  const ca = createCa();
  const leaf = issueLeaf(ca);
  const dir = mkdtempSync(join(tmpdir(), "hx-render-"));
  afterAll(() => {
    ca.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is a configuration HAProxy 2.6 accepts, every option on", () => {
    writeFileSync(join(dir, FILES.certificate), `${leaf.certPem}${leaf.keyPem}`);
    for (const map of Object.values(MAPS)) writeFileSync(join(dir, map), "");
    const plain = renderConfig({ ...input(), dir });
    writeFileSync(join(dir, "plain.cfg"), plain);
    const r = spawnSync("haproxy", ["-c", "-f", join(dir, "plain.cfg")], { encoding: "utf8" });
    expect(r.status, `defaults: ${r.stderr}`).toBe(0);
    for (const balance of ["least_conn", "round_robin", "random", "ip_hash"]) {
      const text = renderConfig({
        ...input({
          "core.proxy.balance": balance,
          "core.proxy.max_connections_per_ip": 10,
          "core.proxy.max_connections_per_app": 100,
          "core.proxy.proxy_protocol": true,
          "core.proxy.app_overrides": { abcd: { proxy_protocol: false, max_connections: 5 } },
        }),
        dir,
        servers: new Map([
          ["app_1", [{ name: "i_ab", ip: "10.4.0.9", proxyV2: true, ready: false }]],
        ]),
      });
      writeFileSync(join(dir, "x.cfg"), text);
      const r = spawnSync("haproxy", ["-c", "-f", join(dir, "x.cfg")], {
        encoding: "utf8",
        timeout: 15_000,
      });
      expect(r.status, `${balance}: ${r.stderr}`).toBe(0);
    }
  });

  it("maps balance, connect_top_n and the timeouts", () => {
    const text = renderConfig(
      input({
        "core.proxy.balance": "ip_hash",
        "core.proxy.connect_top_n": 4,
        "core.proxy.timeouts.connect": "8s",
        "core.proxy.timeouts.handshake": "3s",
        "core.proxy.timeouts.idle": "2m",
      }),
    );
    expect(text).toContain(
      "  balance source\n  hash-type consistent\n  retries 3\n  option redispatch 1",
    );
    expect(text).toContain("timeout connect 2000ms");
    expect(text).toContain("tcp-request inspect-delay 3000ms");
    // A hello still not whole when the delay ends is refused then, counted as a hello timeout.
    expect(text).toContain(
      "use_backend be_hello_timeout if !whole_hello { date(0,ms),sub(sess.accepted) ge 2990 }",
    );
    expect(text).toContain("backend be_hello_timeout\n  tcp-request content reject\n");
    // What Node refuses from its first bytes is not held for the delay.
    expect(text).toContain(
      "accept if tls_record { req.payload(3,2),be2dec(:,2),add(0) -m int 0 16385: }",
    );
    expect(text).toContain("timeout client 120000ms");
    expect(slotsOf(text)).toBe(4);
  });

  it("binds the handed-over descriptors, else the configured address and ports", () => {
    expect(renderConfig(input({}, { fds: { tls: 3, http: 4 } }))).toMatch(
      /bind fd@3\n[\s\S]*bind fd@4\n/,
    );
    const own = renderConfig(
      input({ "core.proxy.listen_addr": "::1", "core.proxy.listen_port": 8443 }),
    );
    expect(own).toContain("bind [::1]:8443\n");
    expect(own).toContain("redirect location https://%[var(txn.host)]:8443%[pathq] code 308");
    expect(renderConfig(input({ "core.proxy.http_redirect": false }))).not.toContain("fe_http");
  });

  it("declares servers with their PROXY v2 choice and state", () => {
    const text = renderConfig(
      input(
        {},
        {
          servers: new Map([
            [
              "app_0",
              [
                { name: "i_01", ip: "10.4.0.2", proxyV2: false, ready: true },
                { name: "i_02", ip: "10.4.0.3", proxyV2: true, ready: false },
              ],
            ],
          ]),
        },
      ),
    );
    expect(text).toContain(
      "backend app_0\n  balance leastconn\n  retries 2\n  option redispatch 1\n  server i_01 10.4.0.2\n  server i_02 10.4.0.3 send-proxy-v2 disabled\n",
    );
  });

  it("limits per client address and per app only when configured", () => {
    expect(renderConfig(input())).not.toContain("sc0_conn_cur");
    expect(renderConfig(input())).not.toContain("sc1_conn_cur");
    const text = renderConfig(
      input({
        "core.proxy.max_connections_per_ip": 7,
        "core.proxy.max_connections_per_app": 50,
        "core.proxy.app_overrides": { abcd: { max_connections: 5 } },
      }),
    );
    expect(text).toContain("tcp-request connection reject if { sc0_conn_cur gt 7 }");
    const over = "set-var(txn.over) bool(1) if";
    expect(text).toContain(`${over} { var(txn.app) -m str abcd } { sc1_conn_cur gt 5 }`);
    expect(text).toContain(`${over} !{ var(txn.app) -m str abcd } { sc1_conn_cur gt 50 }`);
    // Refused in the app's slot, where `show stat` counts it for the app (stats.ts).
    expect(text).toContain("use_backend %[var(txn.over_slot)] if over over_slot");
    expect(text).toContain(
      "backend app_0\n  balance leastconn\n  retries 2\n  option redispatch 1\n  tcp-request content reject if { var(txn.over) -m bool }\n",
    );
  });

  it("sends PROXY v2 on direct connections per app", () => {
    const on = renderConfig(
      input({
        "core.proxy.proxy_protocol": true,
        "core.proxy.app_overrides": { abcd: { proxy_protocol: false } },
      }),
    );
    expect(on).toContain("acl pp_listed var(txn.app) -m str abcd");
    expect(on).toContain("use_backend be_direct_pp if route_ok pass direct !pp_listed");
    expect(renderConfig(input())).toContain(
      "use_backend be_direct_pp if route_ok pass direct FALSE",
    );
  });

  it("has a digest that servers do not change and structure does", () => {
    const a = input();
    const withServer = {
      ...a,
      servers: new Map([["app_0", [{ name: "i_1", ip: "10.0.0.1", proxyV2: false, ready: true }]]]),
    };
    expect(structureDigest(withServer)).toBe(structureDigest(a));
    expect(structureDigest({ ...a, slots: 8 })).not.toBe(structureDigest(a));
    expect(digestOf(renderConfig(withServer))).toBe(structureDigest(a));
  });
});
