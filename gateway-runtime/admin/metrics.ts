/**
 * `GET /metrics`: the Prometheus text format (version 0.0.4), written by prom-client. Each scrape
 * builds a fresh registry from the admin view, so the values are a plain function of it (no
 * state kept between scrapes). Counters are per process and summed over the proxy workers, so
 * a restarted worker shows as a counter reset, which Prometheus' `rate()` handles. The
 * histograms come as prom-client JSON from each data plane and from registration, and are
 * summed by bucket with `AggregatorRegistry.aggregate` (its static part only: its cluster
 * messaging would duplicate the workers' own stats request, which tolerates a silent worker).
 * Every family is written with its HELP and TYPE even when it has no samples yet, so
 * dashboards and alerts see the names from the first scrape.
 */
import { AggregatorRegistry, Counter, Gauge, Registry } from "prom-client";
import { ProxyTimings } from "../proxy/index.js";
import { isHealthy } from "../registry/index.js";
import type { AdminView } from "./view.js";

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

type Labels = Readonly<Record<string, string>>;
type Sample = readonly [Labels, number];

/** One family in `registry`; a label-less family has a sample only when one is given. */
function family(
  registry: Registry,
  type: "counter" | "gauge",
  name: string,
  help: string,
  labelNames: readonly string[],
  samples: Iterable<Sample>,
): void {
  const config = { name, help, labelNames, registers: [registry] };
  if (type === "gauge") {
    const gauge = new Gauge(config);
    if (labelNames.length === 0) gauge.remove();
    for (const [labels, value] of samples) gauge.set(labels, value);
  } else {
    const counter = new Counter(config);
    if (labelNames.length === 0) counter.remove();
    for (const [labels, value] of samples) counter.inc(labels, value);
  }
}

const seconds = (ms: number): number => ms / 1000;

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A record's entries in key order, so scrapes list series the same way each time. */
function sorted<T>(record: Readonly<Record<string, T>>): [string, T][] {
  return Object.entries(record).sort(([a], [b]) => compare(a, b));
}

function proxyFamilies(r: Registry, view: AdminView): void {
  const apps = sorted(view.proxy.apps);
  family(
    r,
    "gauge",
    "gateway_proxy_workers",
    "Processes serving the data plane, and how many answered for this scrape.",
    ["state"],
    [
      [{ state: "running" }, view.workers.running],
      [{ state: "answered" }, view.workers.answered],
    ],
  );
  family(
    r,
    "gauge",
    "gateway_connections_open",
    "Connections open to an app's instances.",
    ["app"],
    apps.map(([app, c]) => [{ app }, c.active]),
  );
  family(
    r,
    "counter",
    "gateway_connections_total",
    "Connections routed to an app since the data plane started.",
    ["app"],
    apps.map(([app, c]) => [{ app }, c.total]),
  );
  family(
    r,
    "counter",
    "gateway_transferred_bytes_total",
    "Bytes moved for an app's closed connections, by direction.",
    ["app", "direction"],
    apps.flatMap(([app, c]): Sample[] => [
      [{ app, direction: "to_backend" }, c.bytesToBackend],
      [{ app, direction: "to_client" }, c.bytesToClient],
    ]),
  );
  family(
    r,
    "counter",
    "gateway_rejected_connections_total",
    "Connections refused before reaching an instance, by reason (error code).",
    ["reason"],
    sorted(view.proxy.rejected).map(([reason, n]) => [{ reason }, n]),
  );
  family(
    r,
    "counter",
    "gateway_app_rejected_connections_total",
    "Connections refused for a known app, by reason (error code).",
    ["app", "reason"],
    apps.flatMap(([app, c]) =>
      sorted(c.rejected).map(([reason, n]): Sample => [{ app, reason }, n]),
    ),
  );
}

function instanceFamilies(r: Registry, view: AdminView): void {
  const byApp = new Map<string, { all: number; healthy: number; routable: number }>();
  const instances = [...view.instances].sort(
    (a, b) => compare(a.appId, b.appId) || compare(a.id, b.id),
  );
  for (const i of instances) {
    const counts = byApp.get(i.appId) ?? { all: 0, healthy: 0, routable: 0 };
    counts.all++;
    if (isHealthy(i, view.nowMs, view.healthyHandshakeAgeMs)) {
      counts.healthy++;
      if (!i.outOfRotation) counts.routable++;
    }
    byApp.set(i.appId, counts);
  }
  const perInstance = ["app", "instance"];
  family(
    r,
    "gauge",
    "gateway_instances",
    "Registered instances per app.",
    ["app"],
    [...byApp].map(([app, c]) => [{ app }, c.all]),
  );
  family(
    r,
    "gauge",
    "gateway_healthy_instances",
    "Instances per app with a WireGuard handshake younger than healthy_handshake_age.",
    ["app"],
    [...byApp].map(([app, c]) => [{ app }, c.healthy]),
  );
  family(
    r,
    "gauge",
    "gateway_routable_instances",
    "Instances per app that take its connections: healthy and in rotation.",
    ["app"],
    [...byApp].map(([app, c]) => [{ app }, c.routable]),
  );
  family(
    r,
    "gauge",
    "gateway_instance_connections_open",
    "Connections open to an instance.",
    perInstance,
    instances.map((i) => [{ app: i.appId, instance: i.id }, view.proxy.instances[i.id] ?? 0]),
  );
  family(
    r,
    "counter",
    "gateway_instance_connect_failures_total",
    "Connects to an instance that failed (refused, reset, or dialled in turn and silent while another answered); the race hides them from clients.",
    perInstance,
    instances.map((i) => [{ app: i.appId, instance: i.id }, view.proxy.connectFailures[i.id] ?? 0]),
  );
  family(
    r,
    "gauge",
    "gateway_instance_last_handshake_timestamp_seconds",
    "Latest WireGuard handshake of an instance (0: none yet).",
    perInstance,
    instances.map((i) => [{ app: i.appId, instance: i.id }, seconds(i.lastHandshakeMs)]),
  );
}

function certificateFamilies(r: Registry, view: AdminView): void {
  const served = new Map(view.proxy.certificates.map((c) => [c.serial, c.notAfterMs]));
  family(
    r,
    "gauge",
    "gateway_certificate_expiry_timestamp_seconds",
    "notAfter of each certificate the data plane serves (two while a reload is under way).",
    ["serial"],
    [...served].map(([serial, notAfterMs]) => [{ serial }, seconds(notAfterMs)]),
  );
  const rpc = view.rpcCertificate;
  family(
    r,
    "gauge",
    "gateway_rpc_certificate_expiry_timestamp_seconds",
    "notAfter of the certificate the registration RPC port serves.",
    ["serial"],
    rpc ? [[{ serial: rpc.serial }, seconds(rpc.notAfterMs)]] : [],
  );
  const certbot = view.certbot;
  if (!certbot) return;
  const last = certbot.lastRenewal;
  family(
    r,
    "gauge",
    "gateway_certbot_consecutive_failures",
    "Failed ACME checks in a row (0 after a success).",
    [],
    [[{}, certbot.failures]],
  );
  family(
    r,
    "gauge",
    "gateway_certbot_last_run_timestamp_seconds",
    "When the last ACME renewal ran, by its result.",
    ["result"],
    last ? [[{ result: last.ok ? "ok" : "failed" }, seconds(last.at.getTime())]] : [],
  );
  family(
    r,
    "gauge",
    "gateway_certbot_last_success_timestamp_seconds",
    "When this process last renewed the certificate successfully (none yet: no sample).",
    [],
    certbot.lastSuccess ? [[{}, seconds(certbot.lastSuccess.getTime())]] : [],
  );
  family(
    r,
    "gauge",
    "gateway_certbot_next_check_timestamp_seconds",
    "When the certificate manager checks next.",
    [],
    certbot.nextCheck ? [[{}, seconds(certbot.nextCheck.getTime())]] : [],
  );
}

export async function renderMetrics(view: AdminView): Promise<string> {
  const registry = new Registry();
  family(
    registry,
    "gauge",
    "gateway_start_time_seconds",
    "When this gateway process started.",
    [],
    [[{}, seconds(view.startedAtMs)]],
  );
  proxyFamilies(registry, view);
  instanceFamilies(registry, view);
  certificateFamilies(registry, view);
  family(
    registry,
    "counter",
    "gateway_admin_auth_failures_total",
    "Admin API requests refused for missing or wrong credentials.",
    [],
    [[{}, view.adminAuthFailures ?? 0]],
  );
  const histograms = AggregatorRegistry.aggregate<typeof Registry.PROMETHEUS_CONTENT_TYPE>([
    await ProxyTimings.empty(),
    [...view.proxy.timings],
    [...(view.timings ?? [])],
  ]);
  return Registry.merge([registry, histograms]).metrics();
}
