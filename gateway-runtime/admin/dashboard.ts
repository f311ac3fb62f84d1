/**
 * The dashboard at the admin API's `/`: one server-rendered HTML page, inline CSS, no script
 * and nothing fetched from elsewhere (a host without internet shows it whole), refreshed by
 * `<meta http-equiv="refresh">`. It sits behind the API's authentication: a browser sends the
 * token as the Basic password (or an htpasswd user's). Every value from outside (instance and
 * app ids, node names, error lines) goes through `escapeHtml`; the CSP forbids scripts anyway.
 */
import { isHealthy } from "../registry/index.js";
import type { ErrorLine } from "../log/index.js";
import type { NodeView } from "../cluster/index.js";
import type { AdminView } from "./view.js";

export interface DashboardData {
  readonly view: AdminView;
  readonly version: string;
  /** This node's name in its region, if it is in one. */
  readonly node?: string;
  readonly nodes: readonly NodeView[];
  readonly errors: readonly ErrorLine[];
}

/** Seconds between refreshes. */
export const REFRESH_S = 10;

/** Headers of the page: no script, no outside resource, no framing, not cached. */
export const DASHBOARD_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
};

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Text for HTML content and quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

function ago(nowMs: number, atMs: number): string {
  if (atMs <= 0) return "never";
  const s = Math.max(0, Math.round((nowMs - atMs) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** A table; `rows` are already escaped cells. */
function table(id: string, head: readonly string[], rows: readonly string[][], empty: string) {
  if (rows.length === 0) return `<p class="empty" id="${id}">${escapeHtml(empty)}</p>`;
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("\n");
  return `<table id="${id}"><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function thisNode(d: DashboardData): string {
  const { view } = d;
  const notAfter = view.certbot?.notAfter?.getTime() ?? view.proxy.certificates[0]?.notAfterMs;
  const expiry =
    notAfter === undefined
      ? "unknown"
      : `${new Date(notAfter).toISOString()} (in ${duration(notAfter - view.nowMs)})`;
  const cb = view.certbot;
  const last = cb?.lastRenewal;
  const acme = !cb
    ? "off (core.certbot.enabled = false)"
    : `${cb.failures === 0 ? "ok" : `${cb.failures} failures in a row`}; last run ${
        last
          ? `${last.at.toISOString()} ${last.ok ? "ok" : `failed: ${last.error ?? ""}`}`
          : "none yet"
      }; next check ${cb.nextCheck ? cb.nextCheck.toISOString() : "none"}`;
  const rows: [string, string][] = [
    ["node", d.node ?? "(no region)"],
    ["version", d.version],
    ["uptime", duration(view.nowMs - view.startedAtMs)],
    ["base domain", view.baseDomain],
    ["certificate expires", expiry],
    ["ACME", acme],
    ["proxy workers", `${view.workers.answered} of ${view.workers.running} answered`],
  ];
  const body = rows
    .map(
      ([k, v]) =>
        `<tr><th>${escapeHtml(k)}</th><td class="${k === "ACME" && cb && cb.failures > 0 ? "bad" : ""}">${escapeHtml(v)}</td></tr>`,
    )
    .join("\n");
  return `<table id="node" class="kv"><tbody>\n${body}\n</tbody></table>`;
}

function regionNodes(d: DashboardData): string {
  const rows = d.nodes.map((n) => [
    escapeHtml(n.name) + (n.name === d.node ? " (this node)" : ""),
    `<span class="${n.status === "up" ? "ok" : "bad"}">${escapeHtml(n.status === "up" ? "up" : "draining")}</span>`,
    escapeHtml(n.version),
    escapeHtml(n.wg_endpoint),
    escapeHtml(n.url),
  ]);
  return table(
    "nodes",
    ["node", "status", "version", "WireGuard endpoint", "url"],
    rows,
    "No region: this gateway runs on its own.",
  );
}

function apps(view: AdminView): string {
  const ids = new Set([...Object.keys(view.proxy.apps), ...view.instances.map((i) => i.appId)]);
  const rows = [...ids].sort().map((id) => {
    const a = view.proxy.apps[id];
    const instances = view.instances.filter((i) => i.appId === id);
    const healthy = instances.filter(
      (i) => !i.outOfRotation && isHealthy(i, view.nowMs, view.healthyHandshakeAgeMs),
    ).length;
    const rejected = Object.values(a?.rejected ?? {}).reduce((s, n) => s + n, 0);
    return [
      escapeHtml(id),
      `${healthy} / ${instances.length}`,
      String(a?.active ?? 0),
      String(a?.total ?? 0),
      escapeHtml(bytes(a?.bytesToBackend ?? 0)),
      escapeHtml(bytes(a?.bytesToClient ?? 0)),
      String(rejected),
    ];
  });
  const head = ["app", "healthy / instances", "open", "total", "bytes in", "bytes out", "refused"];
  return table("apps", head, rows, "No app has registered or connected yet.");
}

function instances(view: AdminView): string {
  const sorted = [...view.instances].sort((a, b) =>
    a.appId === b.appId ? (a.id < b.id ? -1 : 1) : a.appId < b.appId ? -1 : 1,
  );
  const rows = sorted.map((i) => {
    const healthy = isHealthy(i, view.nowMs, view.healthyHandshakeAgeMs);
    const state = i.outOfRotation
      ? '<span class="warn">out of rotation</span>'
      : healthy
        ? '<span class="ok">healthy</span>'
        : '<span class="bad">no recent handshake</span>';
    return [
      `<code class="instance-id">${escapeHtml(i.id)}</code>`,
      `<code>${escapeHtml(i.appId)}</code>`,
      escapeHtml(i.ip),
      escapeHtml(ago(view.nowMs, i.lastHandshakeMs)),
      state,
      String(view.proxy.instances[i.id] ?? 0),
      String(view.proxy.connectFailures[i.id] ?? 0),
    ];
  });
  const head = [
    "instance",
    "app",
    "address",
    "last handshake",
    "health",
    "open",
    "failed connects",
  ];
  return table("instances", head, rows, "No instance is registered.");
}

function rejections(view: AdminView): string {
  const rows = Object.entries(view.proxy.rejected)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => [`<code>${escapeHtml(reason)}</code>`, String(n)]);
  return table("rejections", ["reason", "connections refused"], rows, "No connection was refused.");
}

function errors(lines: readonly ErrorLine[]): string {
  const rows = lines.map((e) => [
    escapeHtml(e.time),
    escapeHtml(e.part ?? ""),
    escapeHtml(e.msg),
    `<code>${escapeHtml(e.err ?? "")}</code>`,
  ]);
  return table(
    "errors",
    ["time", "part", "message", "error"],
    rows,
    "No error logged since the start.",
  );
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#f7f8fa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0001;min-width:40%}
th,td{padding:.3em .7em;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}
thead th{background:#eef1f5;font-weight:600}.kv th{background:#eef1f5;width:12em}
code{font:12px ui-monospace,monospace;word-break:break-all}
.ok{color:#17803d}.bad{color:#b42318;font-weight:600}.warn{color:#a15c07;font-weight:600}
.empty{color:#667085;font-style:italic}.meta{color:#667085}`;

/** The whole page. */
export function renderDashboard(d: DashboardData): string {
  const title = `gateway ${d.node ?? d.view.baseDomain}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${REFRESH_S}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">As of ${escapeHtml(new Date(d.view.nowMs).toISOString())}; refreshes every ${REFRESH_S} s.</p>
<h2>This node</h2>
${thisNode(d)}
<h2>Region</h2>
${regionNodes(d)}
<h2>Apps</h2>
${apps(d.view)}
<h2>Instances</h2>
${instances(d.view)}
<h2>Refused connections by reason</h2>
${rejections(d.view)}
<h2>Recent errors</h2>
${errors(d.errors)}
</body></html>
`;
}
