// The alerting rules the hosts get, checked by Prometheus' own promtool (Debian's `prometheus`
// package, installed by .ci/run): the file parses, and each alert fires on the series it is for
// and stays quiet on the ones it is not. A missing promtool fails here, it never skips.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ALERT_RULES, alertRulesFile } from "../../../host/alerts.js";
import { setupScript, shippedFiles } from "../../../host/files.js";
import { HOST_PATHS, hostLayout } from "../../../host/layout.js";
import { loadStackFile } from "../../../components/stack-config.js";

const layout = () =>
  hostLayout(loadStackFile(new URL("../../../stacks/Pulumi.us.yaml", import.meta.url).pathname));
const dir = mkdtempSync(join(tmpdir(), "gateway-alerts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, "rules.yml"), alertRulesFile());
// promtool compares expanded annotations exactly; the series tests are about when each alert
// fires and with which labels, so they load the same rules without annotations.
writeFileSync(
  join(dir, "bare-rules.yml"),
  stringify({
    groups: [{ name: "bare", rules: ALERT_RULES.map(({ annotations: _, ...r }) => r) }],
  }),
);

function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync("promtool", args, { cwd: dir, encoding: "utf8", timeout: 60_000 });
  if (r.error) throw new Error(`promtool cannot run (install Debian's prometheus): ${r.error}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const DAY = 86_400;
const job = { job: "gateway", instance: "gw1:8001" };
const labels = (extra: Record<string, string>) =>
  `{${Object.entries({ ...job, ...extra })
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`;

/** promtool's unit tests: series at a 1 m interval, and the alerts expected at given times. */
const TESTS = {
  rule_files: ["bare-rules.yml"],
  evaluation_interval: "1m",
  tests: [
    {
      interval: "1m",
      input_series: [
        // Expiry timestamps (s): time() is 0 at the start, so these are "in N days".
        {
          series: `gateway_certificate_expiry_timestamp_seconds${labels({ serial: "0A" })}`,
          values: `${6 * DAY}x30`,
        },
        {
          series: `gateway_certificate_expiry_timestamp_seconds${labels({ serial: "0B" })}`,
          values: `${60 * DAY}x30`,
        },
        {
          series: `gateway_rpc_certificate_expiry_timestamp_seconds${labels({ serial: "0C" })}`,
          values: `${3 * DAY}x30`,
        },
      ],
      alert_rule_test: [
        { eval_time: "5m", alertname: "GatewayCertificateExpiringSoon", exp_alerts: [] },
        {
          eval_time: "15m",
          alertname: "GatewayCertificateExpiringSoon",
          exp_alerts: ["0A", "0C"].map((serial) => ({
            exp_labels: { ...job, serial, severity: "critical" },
          })),
        },
      ],
    },
    {
      interval: "1m",
      input_series: [
        {
          series: `gateway_certbot_consecutive_failures${labels({})}`,
          values: "0x9 1+1x90",
        },
        {
          series: `gateway_certbot_consecutive_failures{job="gateway",instance="gw2:8001"}`,
          values: "0x9 1x20 0x60",
        },
      ],
      alert_rule_test: [
        { eval_time: "50m", alertname: "GatewayCertificateRenewalFailing", exp_alerts: [] },
        {
          eval_time: "80m",
          alertname: "GatewayCertificateRenewalFailing",
          exp_alerts: [{ exp_labels: { ...job, severity: "warning" } }],
        },
      ],
    },
    {
      interval: "1m",
      input_series: [
        // aa01 had one, loses it at 20m; bb02 never had one; cc03 vanishes (recycled) at 20m.
        { series: `gateway_routable_instances${labels({ app: "aa01" })}`, values: "1x19 0x40" },
        { series: `gateway_routable_instances${labels({ app: "bb02" })}`, values: "0x60" },
        { series: `gateway_routable_instances${labels({ app: "cc03" })}`, values: "2x19 _x40" },
      ],
      alert_rule_test: [
        { eval_time: "19m", alertname: "GatewayAppNoHealthyInstance", exp_alerts: [] },
        {
          // cc03's last sample counts for 5 more minutes (lookback), then 5 m pending.
          eval_time: "35m",
          alertname: "GatewayAppNoHealthyInstance",
          exp_alerts: ["aa01", "cc03"].map((app) => ({
            exp_labels: { ...job, app, severity: "critical" },
          })),
        },
      ],
    },
    {
      interval: "1m",
      input_series: [
        // aa01: 100 connections/s, 20 failures/s from 10m. cc03: as busy, 1 % failing.
        // dd04: half its connects fail, but at 0.05/s, under the floor.
        { series: `gateway_connections_total${labels({ app: "aa01" })}`, values: "0+6000x40" },
        {
          series: `gateway_instance_connect_failures_total${labels({ app: "aa01", instance: "aa0101" })}`,
          values: "0+0x10 0+1200x30",
        },
        { series: `gateway_connections_total${labels({ app: "cc03" })}`, values: "0+6000x40" },
        {
          series: `gateway_instance_connect_failures_total${labels({ app: "cc03", instance: "cc0301" })}`,
          values: "0+60x40",
        },
        { series: `gateway_connections_total${labels({ app: "dd04" })}`, values: "0+6x40" },
        {
          series: `gateway_instance_connect_failures_total${labels({ app: "dd04", instance: "dd0401" })}`,
          values: "0+3x40",
        },
      ],
      alert_rule_test: [
        { eval_time: "12m", alertname: "GatewayConnectFailuresRising", exp_alerts: [] },
        {
          eval_time: "30m",
          alertname: "GatewayConnectFailuresRising",
          exp_alerts: [{ exp_labels: { app: "aa01", severity: "warning" } }],
        },
      ],
    },
    {
      interval: "1m",
      input_series: [
        {
          series: `gateway_admin_auth_failures_total${labels({})}`,
          values: "0 1 1 1 1 1 1 1 1 1 2 3 4 5 6 7 8 9 10x20",
        },
      ],
      alert_rule_test: [
        { eval_time: "9m", alertname: "GatewayAdminAuthFailures", exp_alerts: [] },
        {
          eval_time: "18m",
          alertname: "GatewayAdminAuthFailures",
          exp_alerts: [{ exp_labels: { ...job, severity: "warning" } }],
        },
      ],
    },
  ],
};

describe("the Prometheus alerting rules", () => {
  it("pass promtool check rules", () => {
    const r = promtool("check", "rules", "rules.yml");
    expect(r.output).toContain(`SUCCESS: ${ALERT_RULES.length} rules found`);
    expect(r.status).toBe(0);
  });

  it("fire on the series they are for, and only those (promtool test rules)", () => {
    writeFileSync(join(dir, "tests.yml"), stringify(TESTS));
    const r = promtool("test", "rules", "tests.yml");
    expect(r.output).toContain("SUCCESS");
    expect(r.status).toBe(0);
  });

  it("are installed on each host, readable by a local Prometheus", () => {
    expect(setupScript(layout())).toContain(
      `cat > "$tmp" <<'GATEWAY_RULES'\n${alertRulesFile()}GATEWAY_RULES\nchmod 0644 "$tmp"\nmv -f "$tmp" ${HOST_PATHS.alertRules}\n`,
    );
    expect(shippedFiles({ acmeCa: false, attestationCa: false })).toContain(HOST_PATHS.alertRules);
  });
});
