/**
 * `GET /metrics`: the Prometheus text format (version 0.0.4). Counters are per process and
 * summed over the proxy workers, so a restarted worker shows as a counter reset, which
 * Prometheus' `rate()` handles. Every family is written with its HELP and TYPE even when it has
 * no samples yet, so dashboards and alerts see the names from the first scrape.
 */
import { isHealthy } from "../registry/index.js";
import type { AdminView } from "./view.js";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Readonly<Record<string, string>>;
type Sample = readonly [Labels, number];

/** Label values escape backslash, double quote and line feed. */
function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

function formatValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "+Inf" : "-Inf";
  return String(n);
}

function family(
  name: string,
  type: "counter" | "gauge",
  help: string,
  samples: Iterable<Sample>,
): string {
  let text = `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
  for (const [labels, value] of samples) {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    text += `${name}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${formatValue(value)}\n`;
  }
  return text;
}

const seconds = (ms: number): number => ms / 1000;

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A record's entries in key order, so scrapes list series the same way each time. */
function sorted<T>(record: Readonly<Record<string, T>>): [string, T][] {
  return Object.entries(record).sort(([a], [b]) => compare(a, b));
}

function proxyFamilies(view: AdminView): string[] {
  const apps = sorted(view.proxy.apps);
  return [
    family(
      "gateway_proxy_workers",
      "gauge",
      "Processes serving the data plane, and how many answered for this scrape.",
      [
        [{ state: "running" }, view.workers.running],
        [{ state: "answered" }, view.workers.answered],
      ],
    ),
    family(
      "gateway_connections_open",
      "gauge",
      "Connections open to an app's instances.",
      apps.map(([app, c]) => [{ app }, c.active]),
    ),
    family(
      "gateway_connections_total",
      "counter",
      "Connections routed to an app since the data plane started.",
      apps.map(([app, c]) => [{ app }, c.total]),
    ),
    family(
      "gateway_transferred_bytes_total",
      "counter",
      "Bytes moved for an app's closed connections, by direction.",
      apps.flatMap(([app, c]): Sample[] => [
        [{ app, direction: "to_backend" }, c.bytesToBackend],
        [{ app, direction: "to_client" }, c.bytesToClient],
      ]),
    ),
    family(
      "gateway_rejected_connections_total",
      "counter",
      "Connections refused before reaching an instance, by reason (error code).",
      sorted(view.proxy.rejected).map(([reason, n]) => [{ reason }, n]),
    ),
    family(
      "gateway_app_rejected_connections_total",
      "counter",
      "Connections refused for a known app, by reason (error code).",
      apps.flatMap(([app, c]) =>
        sorted(c.rejected).map(([reason, n]): Sample => [{ app, reason }, n]),
      ),
    ),
  ];
}

function instanceFamilies(view: AdminView): string[] {
  const byApp = new Map<string, { all: number; healthy: number }>();
  const instances = [...view.instances].sort(
    (a, b) => compare(a.appId, b.appId) || compare(a.id, b.id),
  );
  for (const i of instances) {
    const counts = byApp.get(i.appId) ?? { all: 0, healthy: 0 };
    counts.all++;
    if (isHealthy(i, view.nowMs, view.healthyHandshakeAgeMs)) counts.healthy++;
    byApp.set(i.appId, counts);
  }
  return [
    family(
      "gateway_instances",
      "gauge",
      "Registered instances per app.",
      [...byApp].map(([app, c]) => [{ app }, c.all]),
    ),
    family(
      "gateway_healthy_instances",
      "gauge",
      "Instances per app with a WireGuard handshake younger than healthy_handshake_age.",
      [...byApp].map(([app, c]) => [{ app }, c.healthy]),
    ),
    family(
      "gateway_instance_connections_open",
      "gauge",
      "Connections open to an instance.",
      instances.map((i) => [{ app: i.appId, instance: i.id }, view.proxy.instances[i.id] ?? 0]),
    ),
    family(
      "gateway_instance_connect_failures_total",
      "counter",
      "Connects to an instance that failed (refused, reset, or dialled in turn and silent while another answered); the race hides them from clients.",
      instances.map((i) => [
        { app: i.appId, instance: i.id },
        view.proxy.connectFailures[i.id] ?? 0,
      ]),
    ),
    family(
      "gateway_instance_last_handshake_timestamp_seconds",
      "gauge",
      "Latest WireGuard handshake of an instance (0: none yet).",
      instances.map((i) => [{ app: i.appId, instance: i.id }, seconds(i.lastHandshakeMs)]),
    ),
  ];
}

function certificateFamilies(view: AdminView): string[] {
  const served = new Map(view.proxy.certificates.map((c) => [c.serial, c.notAfterMs]));
  const families = [
    family(
      "gateway_certificate_expiry_timestamp_seconds",
      "gauge",
      "notAfter of each certificate the data plane serves (two while a reload is under way).",
      [...served].map(([serial, notAfterMs]) => [{ serial }, seconds(notAfterMs)]),
    ),
  ];
  const certbot = view.certbot;
  if (!certbot) return families;
  const last = certbot.lastRenewal;
  families.push(
    family(
      "gateway_certbot_consecutive_failures",
      "gauge",
      "Failed ACME checks in a row (0 after a success).",
      [[{}, certbot.failures]],
    ),
    family(
      "gateway_certbot_last_run_timestamp_seconds",
      "gauge",
      "When the last ACME renewal ran, by its result.",
      last ? [[{ result: last.ok ? "ok" : "failed" }, seconds(last.at.getTime())]] : [],
    ),
    family(
      "gateway_certbot_next_check_timestamp_seconds",
      "gauge",
      "When the certificate manager checks next.",
      certbot.nextCheck ? [[{}, seconds(certbot.nextCheck.getTime())]] : [],
    ),
  );
  return families;
}

export function renderMetrics(view: AdminView): string {
  return [
    family("gateway_start_time_seconds", "gauge", "When this gateway process started.", [
      [{}, seconds(view.startedAtMs)],
    ]),
    ...proxyFamilies(view),
    ...instanceFamilies(view),
    ...certificateFamilies(view),
  ].join("");
}
