/**
 * Prometheus alerting rules for the gateway's `/metrics` (gateway-runtime/admin/metrics.ts),
 * installed on each host at `HOST_PATHS.alertRules` for an operator's Prometheus to load
 * (`rule_files:`). The expressions name only families the runtime writes from the first
 * scrape, so a rule never waits on a series that appears late. Checked by `promtool check
 * rules` and `promtool test rules` (tests/unit/host/alerts.test.ts).
 */
import { stringify } from "yaml";

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: { readonly severity: "critical" | "warning" };
  readonly annotations: { readonly summary: string; readonly description: string };
}

/** Both certificates: the proxy's (one series per serial served) and the RPC port's. */
const EXPIRY = '{__name__=~"gateway_(rpc_)?certificate_expiry_timestamp_seconds"}';
const FAILURES = "sum by (app) (rate(gateway_instance_connect_failures_total[5m]))";

export const ALERT_RULES: readonly AlertRule[] = [
  {
    alert: "GatewayCertificateExpiringSoon",
    // The manager renews 10 days ahead by default (renew_before_expiration): 7 days left means 3 days of failed renewals.
    expr: `min by (job, instance, serial) (${EXPIRY}) - time() < 7 * 86400`,
    for: "10m",
    labels: { severity: "critical" },
    annotations: {
      summary: "A gateway certificate expires within 7 days",
      description:
        "Certificate {{ $labels.serial }} on {{ $labels.instance }} expires in {{ $value | humanizeDuration }}. Check the certbot logs and gateway_certbot_consecutive_failures; `gateway admin RenewCert` forces a renewal.",
    },
  },
  {
    alert: "GatewayCertificateRenewalFailing",
    // A run backs off from 1 min to 1 h: an hour of failures is several runs, not one blip.
    expr: "gateway_certbot_consecutive_failures > 0",
    for: "1h",
    labels: { severity: "warning" },
    annotations: {
      summary: "Certificate renewal keeps failing",
      description:
        "{{ $labels.instance }} has failed {{ $value }} ACME checks in a row (DNS provider credentials, CAA records, the CA's rate limits).",
    },
  },
  {
    alert: "GatewayAppNoHealthyInstance",
    // Had one within the hour and has none now; the series also disappears when every
    // instance of the app was recycled, which `unless` counts as none. Routable, not healthy:
    // instances an operator took out of rotation take no connections either.
    expr: "max_over_time(gateway_routable_instances[1h]) > 0 unless gateway_routable_instances > 0",
    for: "5m",
    labels: { severity: "critical" },
    annotations: {
      summary: "An app lost its last healthy instance",
      description:
        "App {{ $labels.app }} had a healthy instance in rotation on {{ $labels.instance }} within the hour and has none now: its connections are refused (E_NO_HEALTHY_INSTANCE).",
    },
  },
  {
    alert: "GatewayConnectFailuresRising",
    // Over 5 % of an app's connections, and more than a few a minute so a quiet app does not
    // page on one refusal. The race hides these from clients until every candidate fails.
    expr: `${FAILURES} > 0.05 * sum by (app) (rate(gateway_connections_total[5m])) and ${FAILURES} > 0.1`,
    for: "10m",
    labels: { severity: "warning" },
    annotations: {
      summary: "Connects to an app's instances are failing",
      description:
        "App {{ $labels.app }}: {{ $value | humanize }} failed connects per second to its instances (gateway_instance_connect_failures_total).",
    },
  },
  {
    alert: "GatewayAdminAuthFailures",
    // The admin API listens on loopback or a 0600 socket: a stream of bad credentials is a
    // local process guessing, or a scraper with a stale token.
    expr: "increase(gateway_admin_auth_failures_total[15m]) > 5",
    for: "0m",
    labels: { severity: "warning" },
    annotations: {
      summary: "Admin API requests with bad credentials",
      description:
        "{{ $labels.instance }} refused {{ $value | humanize }} admin requests for missing or wrong credentials in 15 minutes.",
    },
  },
];

/** The rule file: one group, in Prometheus' YAML. */
export function alertRulesFile(rules: readonly AlertRule[] = ALERT_RULES): string {
  return `# Prometheus alerting rules for cvm-tls-gateway, written by the deploy.\n${stringify(
    {
      groups: [{ name: "cvm-tls-gateway", rules }],
    },
    { lineWidth: 0 },
  )}`;
}
