import { describe, expect, it } from "vitest";
import { renderMetrics } from "../../../gateway-runtime/admin/index.js";
import { ProxyTimings } from "../../../gateway-runtime/proxy/index.js";
import { RegistrationLatency } from "../../../gateway-runtime/registration/index.js";
import { adminView, NOW } from "./view.js";

const s = (ms: number) => ms / 1000;

describe("renderMetrics", () => {
  it("writes every family in the Prometheus text format, series in a stable order", async () => {
    const text = await renderMetrics(adminView());
    // prom-client separates families with a blank line; the histograms follow (tested below).
    const lines = text.split("\n").filter((l) => l !== "");
    expect(lines.slice(0, lines.indexOf("gateway_admin_auth_failures_total 0") + 1)).toEqual([
      "# HELP gateway_start_time_seconds When this gateway process started.",
      "# TYPE gateway_start_time_seconds gauge",
      `gateway_start_time_seconds ${s(NOW - 60_000)}`,
      "# HELP gateway_proxy_workers Processes serving the data plane, and how many answered for this scrape.",
      "# TYPE gateway_proxy_workers gauge",
      'gateway_proxy_workers{state="running"} 2',
      'gateway_proxy_workers{state="answered"} 2',
      "# HELP gateway_connections_open Connections open to an app's instances.",
      "# TYPE gateway_connections_open gauge",
      'gateway_connections_open{app="aa01"} 2',
      'gateway_connections_open{app="bb02"} 0',
      "# HELP gateway_connections_total Connections routed to an app since the data plane started.",
      "# TYPE gateway_connections_total counter",
      'gateway_connections_total{app="aa01"} 7',
      'gateway_connections_total{app="bb02"} 3',
      "# HELP gateway_transferred_bytes_total Bytes moved for an app's closed connections, by direction.",
      "# TYPE gateway_transferred_bytes_total counter",
      'gateway_transferred_bytes_total{app="aa01",direction="to_backend"} 1500',
      'gateway_transferred_bytes_total{app="aa01",direction="to_client"} 64000',
      'gateway_transferred_bytes_total{app="bb02",direction="to_backend"} 30',
      'gateway_transferred_bytes_total{app="bb02",direction="to_client"} 300',
      "# HELP gateway_rejected_connections_total Connections refused before reaching an instance, by reason (error code).",
      "# TYPE gateway_rejected_connections_total counter",
      'gateway_rejected_connections_total{reason="E_LIMIT_APP"} 1',
      'gateway_rejected_connections_total{reason="E_ROUTE_UNKNOWN_APP"} 4',
      "# HELP gateway_app_rejected_connections_total Connections refused for a known app, by reason (error code).",
      "# TYPE gateway_app_rejected_connections_total counter",
      'gateway_app_rejected_connections_total{app="aa01",reason="E_LIMIT_APP"} 1',
      "# HELP gateway_instances Registered instances per app.",
      "# TYPE gateway_instances gauge",
      'gateway_instances{app="aa01"} 2',
      'gateway_instances{app="bb02"} 1',
      "# HELP gateway_healthy_instances Instances per app with a WireGuard handshake younger than healthy_handshake_age.",
      "# TYPE gateway_healthy_instances gauge",
      'gateway_healthy_instances{app="aa01"} 1',
      'gateway_healthy_instances{app="bb02"} 0',
      "# HELP gateway_routable_instances Instances per app that take its connections: healthy and in rotation.",
      "# TYPE gateway_routable_instances gauge",
      'gateway_routable_instances{app="aa01"} 1',
      'gateway_routable_instances{app="bb02"} 0',
      "# HELP gateway_instance_connections_open Connections open to an instance.",
      "# TYPE gateway_instance_connections_open gauge",
      'gateway_instance_connections_open{app="aa01",instance="aa0101"} 2',
      'gateway_instance_connections_open{app="aa01",instance="aa0102"} 0',
      'gateway_instance_connections_open{app="bb02",instance="bb0201"} 0',
      "# HELP gateway_instance_connect_failures_total Connects to an instance that failed (refused, reset, or dialled in turn and silent while another answered); the race hides them from clients.",
      "# TYPE gateway_instance_connect_failures_total counter",
      'gateway_instance_connect_failures_total{app="aa01",instance="aa0101"} 0',
      'gateway_instance_connect_failures_total{app="aa01",instance="aa0102"} 3',
      'gateway_instance_connect_failures_total{app="bb02",instance="bb0201"} 0',
      "# HELP gateway_instance_last_handshake_timestamp_seconds Latest WireGuard handshake of an instance (0: none yet).",
      "# TYPE gateway_instance_last_handshake_timestamp_seconds gauge",
      `gateway_instance_last_handshake_timestamp_seconds{app="aa01",instance="aa0101"} ${s(NOW - 5_000)}`,
      'gateway_instance_last_handshake_timestamp_seconds{app="aa01",instance="aa0102"} 0',
      `gateway_instance_last_handshake_timestamp_seconds{app="bb02",instance="bb0201"} ${s(NOW - 600_000)}`,
      "# HELP gateway_certificate_expiry_timestamp_seconds notAfter of each certificate the data plane serves (two while a reload is under way).",
      "# TYPE gateway_certificate_expiry_timestamp_seconds gauge",
      `gateway_certificate_expiry_timestamp_seconds{serial="0A"} ${s(Date.UTC(2027, 1, 1))}`,
      "# HELP gateway_rpc_certificate_expiry_timestamp_seconds notAfter of the certificate the registration RPC port serves.",
      "# TYPE gateway_rpc_certificate_expiry_timestamp_seconds gauge",
      "# HELP gateway_certbot_consecutive_failures Failed ACME checks in a row (0 after a success).",
      "# TYPE gateway_certbot_consecutive_failures gauge",
      "gateway_certbot_consecutive_failures 0",
      "# HELP gateway_certbot_last_run_timestamp_seconds When the last ACME renewal ran, by its result.",
      "# TYPE gateway_certbot_last_run_timestamp_seconds gauge",
      `gateway_certbot_last_run_timestamp_seconds{result="ok"} ${s(NOW - 86_400_000)}`,
      "# HELP gateway_certbot_last_success_timestamp_seconds When this process last renewed the certificate successfully (none yet: no sample).",
      "# TYPE gateway_certbot_last_success_timestamp_seconds gauge",
      "# HELP gateway_certbot_next_check_timestamp_seconds When the certificate manager checks next.",
      "# TYPE gateway_certbot_next_check_timestamp_seconds gauge",
      `gateway_certbot_next_check_timestamp_seconds ${s(NOW + 3_600_000)}`,
      "# HELP gateway_admin_auth_failures_total Admin API requests refused for missing or wrong credentials.",
      "# TYPE gateway_admin_auth_failures_total counter",
      "gateway_admin_auth_failures_total 0",
    ]);
    expect(text.endsWith("\n")).toBe(true);
  });

  it("counts an instance taken out of rotation as healthy, not as routable", async () => {
    const base = adminView();
    const text = await renderMetrics({
      ...base,
      instances: base.instances.map((i) => (i.id === "aa0101" ? { ...i, outOfRotation: true } : i)),
    });
    expect(text).toContain('\ngateway_healthy_instances{app="aa01"} 1\n');
    expect(text).toContain('\ngateway_routable_instances{app="aa01"} 0\n');
  });

  it("names every family from the first scrape, and leaves out certbot's when it is off", async () => {
    const { certbot: _, ...rest } = adminView({
      proxy: {
        apps: {},
        rejected: {},
        instances: {},
        connectFailures: {},
        certificates: [],
        timings: [],
      },
      instances: [],
    });
    const text = await renderMetrics(rest);
    expect(text).toContain(
      "# TYPE gateway_connections_total counter\n\n# HELP gateway_transferred",
    );
    expect(text).toContain("# TYPE gateway_tls_handshake_duration_seconds histogram\n");
    expect(text).toContain("# TYPE gateway_instance_connect_duration_seconds histogram\n");
    expect(text).not.toContain("certbot");
    expect(
      text.split("\n").filter((l) => l !== "" && !l.startsWith("#") && !l.includes("_duration_")),
    ).toEqual([
      `gateway_start_time_seconds ${s(NOW - 60_000)}`,
      'gateway_proxy_workers{state="running"} 2',
      'gateway_proxy_workers{state="answered"} 2',
      "gateway_admin_auth_failures_total 0",
    ]);
  });

  it("shows both certificates while workers disagree (a reload under way)", async () => {
    const view = adminView();
    const text = await renderMetrics({
      ...view,
      proxy: {
        ...view.proxy,
        certificates: [
          { serial: "0A", notAfterMs: 1000 },
          { serial: "0B", notAfterMs: 2000 },
        ],
      },
    });
    expect(text).toContain('gateway_certificate_expiry_timestamp_seconds{serial="0A"} 1\n');
    expect(text).toContain('gateway_certificate_expiry_timestamp_seconds{serial="0B"} 2\n');
  });

  it("escapes backslash, double quote and line feed in label values", async () => {
    const view = adminView({
      proxy: {
        apps: {},
        rejected: { 'a"b\\c\nd': 1 },
        instances: {},
        connectFailures: {},
        certificates: [],
        timings: [],
      },
    });
    expect(await renderMetrics(view)).toContain(
      'gateway_rejected_connections_total{reason="a\\"b\\\\c\\nd"} 1\n',
    );
  });

  it("reports a failed last renewal and the failure count", async () => {
    const view = adminView({
      certbot: { failures: 3, nextCheck: undefined, lastRenewal: { at: new Date(NOW), ok: false } },
    });
    const text = await renderMetrics(view);
    expect(text).toContain("gateway_certbot_consecutive_failures 3\n");
    expect(text).toContain(
      `gateway_certbot_last_run_timestamp_seconds{result="failed"} ${s(NOW)}\n`,
    );
    expect(text).not.toMatch(/^gateway_certbot_next_check_timestamp_seconds /m);
  });

  it("sums the data planes' histograms by bucket and adds registration latency", async () => {
    const one = new ProxyTimings();
    const two = new ProxyTimings();
    one.handshake(0.002);
    two.handshake(0.002);
    two.handshake(3);
    one.connect(0.0004);
    const latency = new RegistrationLatency();
    latency.observe(0.3, true);
    latency.observe(12, false);
    const view = adminView();
    const text = await renderMetrics({
      ...view,
      proxy: { ...view.proxy, timings: [...(await one.json()), ...(await two.json())] },
      timings: await latency.json(),
    });
    const h = "gateway_tls_handshake_duration_seconds";
    expect(text).toContain(`${h}_bucket{le="0.001"} 0\n${h}_bucket{le="0.0025"} 2\n`);
    expect(text).toContain(`${h}_bucket{le="5"} 3\n`);
    expect(text).toContain(`${h}_bucket{le="+Inf"} 3\n`);
    expect(Number(new RegExp(`^${h}_sum (\\S+)$`, "m").exec(text)?.[1])).toBeCloseTo(3.004);
    expect(text).toContain(`${h}_count 3\n`);
    expect(text).toContain('gateway_instance_connect_duration_seconds_bucket{le="0.0005"} 1\n');
    const r = "gateway_registration_duration_seconds";
    expect(text).toContain(`# TYPE ${r} histogram\n`);
    expect(text).toContain(`${r}_bucket{le="0.5",result="ok"} 1\n`);
    expect(text).toContain(`${r}_bucket{le="10",result="error"} 0\n`);
    expect(text).toContain(`${r}_count{result="error"} 1\n`);
  });

  it("writes the RPC certificate, the last successful renewal and refused admin requests", async () => {
    const text = await renderMetrics(
      adminView({
        rpcCertificate: { serial: "0C", notAfterMs: 5000 },
        certbot: { failures: 0, nextCheck: undefined, lastSuccess: new Date(NOW) },
        adminAuthFailures: 4,
      }),
    );
    expect(text).toContain('gateway_rpc_certificate_expiry_timestamp_seconds{serial="0C"} 5\n');
    expect(text).toContain(`gateway_certbot_last_success_timestamp_seconds ${s(NOW)}\n`);
    expect(text).toContain("gateway_admin_auth_failures_total 4\n");
  });
});
