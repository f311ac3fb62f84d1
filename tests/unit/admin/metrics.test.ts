import { describe, expect, it } from "vitest";
import { renderMetrics } from "../../../gateway-runtime/admin/index.js";
import { adminView, NOW } from "./view.js";

const s = (ms: number) => ms / 1000;

describe("renderMetrics", () => {
  it("writes every family in the Prometheus text format, series in a stable order", () => {
    expect(renderMetrics(adminView())).toBe(
      [
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
        "# HELP gateway_certbot_consecutive_failures Failed ACME checks in a row (0 after a success).",
        "# TYPE gateway_certbot_consecutive_failures gauge",
        "gateway_certbot_consecutive_failures 0",
        "# HELP gateway_certbot_last_run_timestamp_seconds When the last ACME renewal ran, by its result.",
        "# TYPE gateway_certbot_last_run_timestamp_seconds gauge",
        `gateway_certbot_last_run_timestamp_seconds{result="ok"} ${s(NOW - 86_400_000)}`,
        "# HELP gateway_certbot_next_check_timestamp_seconds When the certificate manager checks next.",
        "# TYPE gateway_certbot_next_check_timestamp_seconds gauge",
        `gateway_certbot_next_check_timestamp_seconds ${s(NOW + 3_600_000)}`,
        "",
      ].join("\n"),
    );
  });

  it("names every family from the first scrape, and leaves out certbot's when it is off", () => {
    const { certbot: _, ...rest } = adminView({
      proxy: { apps: {}, rejected: {}, instances: {}, connectFailures: {}, certificates: [] },
      instances: [],
    });
    const text = renderMetrics(rest);
    expect(text).toContain("# TYPE gateway_connections_total counter\n# HELP gateway_transferred");
    expect(text).not.toContain("certbot");
    expect(text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))).toEqual([
      `gateway_start_time_seconds ${s(NOW - 60_000)}`,
      'gateway_proxy_workers{state="running"} 2',
      'gateway_proxy_workers{state="answered"} 2',
    ]);
  });

  it("shows both certificates while workers disagree (a reload under way)", () => {
    const view = adminView();
    const text = renderMetrics({
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

  it("escapes backslash, double quote and line feed in label values", () => {
    const view = adminView({
      proxy: {
        apps: {},
        rejected: { 'a"b\\c\nd': 1 },
        instances: {},
        connectFailures: {},
        certificates: [],
      },
    });
    expect(renderMetrics(view)).toContain(
      'gateway_rejected_connections_total{reason="a\\"b\\\\c\\nd"} 1\n',
    );
  });

  it("reports a failed last renewal and the failure count", () => {
    const view = adminView({
      certbot: { failures: 3, nextCheck: undefined, lastRenewal: { at: new Date(NOW), ok: false } },
    });
    const text = renderMetrics(view);
    expect(text).toContain("gateway_certbot_consecutive_failures 3\n");
    expect(text).toContain(
      `gateway_certbot_last_run_timestamp_seconds{result="failed"} ${s(NOW)}\n`,
    );
    expect(text).not.toMatch(/^gateway_certbot_next_check_timestamp_seconds /m);
  });
});
