/**
 * HAProxy's `show stat` in the runtime's snapshot shape, from a real answer of HAProxy 2.6
 * (tests/fixtures/haproxy/show-stat.csv, written by tests/integration/haproxy/stats.test.ts:
 * slot app_0 with a live instance, app_1 an instance refusing, app_2 none, app_3 its own rule
 * refusing, app_4 free; a rule in fe_sni refusing one name; one failed TLS handshake).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderMetrics } from "../../../gateway-runtime/admin/metrics.js";
import { statusResponse } from "../../../gateway-runtime/admin/status.js";
import {
  mergeEngineSnapshots,
  parseShowStat,
  snapshotFromStats,
} from "../../../gateway-runtime/engine/haproxy/stats.js";
import type { ProxySnapshot } from "../../../gateway-runtime/proxy/index.js";
import { adminView } from "../admin/view.js";

const csv = readFileSync(new URL("../../fixtures/haproxy/show-stat.csv", import.meta.url), "utf8");
const SLOTS = new Map([
  ["app_0", "a0a0"],
  ["app_1", "b1b1"],
  ["app_2", "c2c2"],
  ["app_3", "d3d3"],
]);

describe("parseShowStat", () => {
  it("reads each row by the header's column names", () => {
    const rows = parseShowStat(csv);
    expect(rows.map((r) => `${r.pxname}/${r.svname}`)).toEqual([
      "fe_sni/FRONTEND",
      "fe_term/FRONTEND",
      "be_term/term",
      "be_term/BACKEND",
      "app_0/i_a0a001",
      "app_0/BACKEND",
      "app_1/i_b1b101",
      "app_1/BACKEND",
      "app_2/BACKEND",
      "app_3/i_d3d301",
      "app_3/BACKEND",
      "app_4/BACKEND",
      "be_node/node",
      "be_node/BACKEND",
    ]);
    const fe = rows.find((r) => r.svname === "FRONTEND" && r.pxname === "fe_term");
    expect(fe?.fields.get("ssl_failed_handshake")).toBe("1");
    expect(fe?.fields.get("stot")).toBe("1");
  });

  it("takes a quoted field with a comma or a quote as one", () => {
    const rows = parseShowStat('# pxname,svname,check_desc,scur\np,s,"a, ""b""",3\n');
    expect(rows[0]?.fields.get("check_desc")).toBe('a, "b"');
    expect(rows[0]?.fields.get("scur")).toBe("3");
  });

  it("refuses what is not a show stat answer", () => {
    expect(() => parseShowStat("Unknown command.\n")).toThrow(/not a show stat answer/);
    expect(() => parseShowStat("")).toThrow(/not a show stat answer/);
  });
});

describe("snapshotFromStats", () => {
  it("maps the real sample onto the Node engine's counters", () => {
    expect(snapshotFromStats(parseShowStat(csv), SLOTS)).toEqual({
      apps: {
        a0a0: { active: 1, total: 4, bytesToBackend: 3164, bytesToClient: 3164, rejected: {} },
        b1b1: {
          active: 0,
          total: 1,
          bytesToBackend: 1581,
          bytesToClient: 0,
          rejected: { E_CONNECT_FAILED: 1 },
        },
        c2c2: {
          active: 0,
          total: 1,
          bytesToBackend: 1581,
          bytesToClient: 0,
          rejected: { E_NO_HEALTHY_INSTANCE: 1 },
        },
        d3d3: {
          active: 0,
          total: 1,
          bytesToBackend: 1581,
          bytesToClient: 0,
          rejected: { E_LIMIT_APP: 1 },
        },
      },
      // fe_sni refused two (its own rule and app_3's): one is the slot's, one a client limit.
      rejected: {
        E_CONNECT_FAILED: 1,
        E_NO_HEALTHY_INSTANCE: 1,
        E_LIMIT_APP: 1,
        E_LIMIT_IP: 1,
        E_TLS_HANDSHAKE: 1,
      },
      instances: { a0a001: 1 },
      connectFailures: { b1b101: 2 },
      certificates: [],
      timings: [],
    });
  });

  it("skips free slots, be_node and the hop to the terminating frontends", () => {
    const only = snapshotFromStats(parseShowStat(csv), new Map([["app_0", "a0a0"]]));
    expect(Object.keys(only.apps)).toEqual(["a0a0"]);
    expect(only.connectFailures).toEqual({});
    expect(only.instances).toEqual({ a0a001: 1 });
  });

  it("counts an attempt redispatched off a server as that server's failed connect", () => {
    // Two servers refusing, `retries 2` + `option redispatch 1` (as render.ts): the first two
    // attempts are moved off their server (wredis), the last one given up (econ), as a live
    // HAProxy 2.6 counted it (tests/integration/proxy/behaviour.test.ts).
    const head = "# pxname,svname,scur,stot,econ,wretr,wredis,lbtot";
    const rows = parseShowStat(
      [
        head,
        "app_0,i_aa01,0,2,1,0,1,2",
        "app_0,i_aa02,0,1,0,0,1,1",
        "app_0,BACKEND,0,1,1,0,2,3",
      ].join("\n"),
    );
    const snapshot = snapshotFromStats(rows, new Map([["app_0", "a1a1"]]));
    expect(snapshot.connectFailures).toEqual({ aa01: 2, aa02: 1 });
    expect(snapshot.apps.a1a1?.rejected).toEqual({ E_CONNECT_FAILED: 1 });
  });

  it("counts be_hello_timeout's sessions as hello timeouts, not as client limits", () => {
    const head = "# pxname,svname,stot,dreq,dcon,dses";
    const rows = parseShowStat(
      [head, "fe_sni,FRONTEND,5,3,0,0", "be_hello_timeout,BACKEND,2,0,,"].join("\n"),
    );
    expect(snapshotFromStats(rows, new Map()).rejected).toEqual({
      E_HELLO_TIMEOUT: 2,
      E_LIMIT_IP: 1,
    });
  });

  it("sums two slots of one app (while the engine moves it)", () => {
    const both = snapshotFromStats(
      parseShowStat(csv),
      new Map([
        ["app_0", "a0a0"],
        ["app_1", "a0a0"],
      ]),
    );
    expect(both.apps.a0a0).toEqual({
      active: 1,
      total: 5,
      bytesToBackend: 3164 + 1581,
      bytesToClient: 3164,
      rejected: { E_CONNECT_FAILED: 1 },
    });
  });

  it("passes the certificate and histograms it is given", () => {
    const certificates = [{ serial: "0B", notAfterMs: 1 }];
    expect(snapshotFromStats([], SLOTS, { certificates }).certificates).toEqual(certificates);
  });
});

describe("mergeEngineSnapshots: HAProxy's counters and the slow path's, under the same names", () => {
  const slowPath: ProxySnapshot = {
    apps: {
      a0a0: { active: 1, total: 2, bytesToBackend: 10, bytesToClient: 20, rejected: {} },
    },
    rejected: { E_ROUTE_UNKNOWN_APP: 3, E_LIMIT_IP: 1 },
    instances: { a0a001: 1 },
    connectFailures: {},
    certificates: [{ serial: "0A", notAfterMs: Date.UTC(2027, 1, 1) }],
    timings: [],
  };
  const merged = mergeEngineSnapshots(snapshotFromStats(parseShowStat(csv), SLOTS), slowPath);

  it("sums each counter", () => {
    expect(merged.apps.a0a0).toEqual({
      active: 2,
      total: 6,
      bytesToBackend: 3174,
      bytesToClient: 3184,
      rejected: {},
    });
    expect(merged.rejected).toMatchObject({ E_ROUTE_UNKNOWN_APP: 3, E_LIMIT_IP: 2 });
    expect(merged.instances).toEqual({ a0a001: 2 });
    expect(merged.certificates).toEqual(slowPath.certificates);
  });

  it("renders as /metrics and Admin.Status do with the Node engine", async () => {
    const view = adminView({
      proxy: merged,
      instances: [{ id: "a0a001", appId: "a0a0", ip: "10.4.0.2", lastHandshakeMs: 0 }],
    });
    const text = await renderMetrics(view);
    expect(text).toContain('gateway_connections_total{app="a0a0"} 6');
    expect(text).toContain('gateway_connections_open{app="a0a0"} 2');
    expect(text).toContain('gateway_rejected_connections_total{reason="E_TLS_HANDSHAKE"} 1');
    expect(text).toContain(
      'gateway_app_rejected_connections_total{app="c2c2",reason="E_NO_HEALTHY_INSTANCE"} 1',
    );
    expect(text).toContain('gateway_instance_connections_open{app="a0a0",instance="a0a001"} 2');
    const status = statusResponse(view, { url: "", bootnode: "" });
    expect(status.num_connections).toBe(2);
    expect(status.hosts[0]?.num_connections).toBe(2);
  });
});
