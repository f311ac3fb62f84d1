/**
 * An SVG bar chart of each scenario's main figure relative to HAProxy (HAProxy = 1, lower is
 * better), for nginx, ours and the Node floor, with our goal marked where the issue sets one.
 */
import type { Row } from "./report.js";

const COLORS: Record<string, string> = { nginx: "#7a9cc6", ours: "#d9822b", node: "#9a9a9a" };
/** `node` is the Node floor (bench/node-floor.ts): what any Node proxy pays at least. */
const SERIES = ["nginx", "ours", "node"] as const;
const LEGEND: Record<(typeof SERIES)[number], string> = {
  nginx: "nginx",
  ours: "ours",
  node: "Node floor",
};
const MAIN: Record<string, string> = {
  a: "CPU / full handshake",
  b: "CPU / resumed handshake",
  c: "CPU / keep-alive request",
  d: "CPU / GB passthrough",
  e: "CPU / passthrough connection",
  f: "added p50 latency",
  g: "memory / idle connection",
};

const esc = (s: string): string =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

/** Where ours should be, as a ratio to HAProxy; undefined when the issue sets no goal. */
function goalRatio(scenario: string, rows: readonly Row[]): number | undefined {
  const row = (t: string) => rows.find((r) => r.scenario === scenario && r.target === t);
  switch (scenario) {
    case "a":
    case "b":
    case "d":
      return 1;
    case "c":
      return 0.8;
    case "f":
      return row("nginx")?.ratioToHaproxy ?? undefined;
    case "g": {
      const h = row("haproxy")?.bytesPerConn;
      return h ? 16384 / h : undefined;
    }
    default:
      return undefined;
  }
}

export function ratioChart(rows: readonly Row[], subtitle: string): string {
  const scenarios = Object.keys(MAIN).filter((s) =>
    rows.some((r) => r.scenario === s && r.ratioToHaproxy != null),
  );
  const left = 230;
  const plotWidth = 520;
  const barH = 14;
  const groupH = SERIES.length * barH + 18;
  const top = 64;
  const height = top + scenarios.length * groupH + 50;
  const width = left + plotWidth + 90;
  const values = rows.flatMap((r) => (r.ratioToHaproxy == null ? [] : [r.ratioToHaproxy]));
  const max = Math.max(2, Math.ceil(Math.max(...values, 0) * 1.1 * 2) / 2);
  const x = (v: number): number => left + (Math.max(0, Math.min(v, max)) / max) * plotWidth;

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12" role="img" aria-labelledby="chart-title">`,
    `<title id="chart-title">Gateway benchmark: main figure per scenario relative to HAProxy</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">Main figure relative to HAProxy (HAProxy = 1, lower is better)</text>`,
    `<text x="${left}" y="40" fill="#555">${esc(subtitle)}</text>`,
  ];
  for (let t = 0; t <= max + 1e-9; t += max > 4 ? 1 : 0.5) {
    const xt = x(t).toFixed(1);
    out.push(
      `<line x1="${xt}" y1="${top - 6}" x2="${xt}" y2="${height - 40}" stroke="${t === 1 ? "#333" : "#e3e3e3"}" stroke-width="${t === 1 ? 1.5 : 1}"/>`,
      `<text x="${xt}" y="${height - 26}" text-anchor="middle" fill="#555">${t.toFixed(1)}</text>`,
    );
  }
  out.push(`<text x="${x(1) + 4}" y="${top - 10}" fill="#333">HAProxy</text>`);
  scenarios.forEach((s, gi) => {
    const y0 = top + gi * groupH;
    out.push(
      `<text x="${left - 10}" y="${y0 + barH}" text-anchor="end" font-weight="bold">(${s})</text>`,
      `<text x="${left - 10}" y="${y0 + 2 * barH}" text-anchor="end" fill="#555">${esc(MAIN[s] ?? "")}</text>`,
    );
    SERIES.forEach((name, si) => {
      const r = rows.find((row) => row.scenario === s && row.target === name);
      const v = r?.ratioToHaproxy;
      const y = y0 + si * barH;
      if (v == null) return;
      out.push(
        `<rect x="${left}" y="${y}" width="${(x(v) - left).toFixed(1)}" height="${barH - 3}" fill="${COLORS[name]}"/>`,
        `<text x="${(x(v) + 4).toFixed(1)}" y="${y + barH - 4}" fill="#333">${name} ${v.toFixed(2)}${v > max ? " (clipped)" : ""}</text>`,
      );
    });
    const goal = goalRatio(s, rows);
    if (goal !== undefined) {
      const gx = x(goal).toFixed(1);
      const y = y0 + barH;
      out.push(
        `<line x1="${gx}" y1="${y - 2}" x2="${gx}" y2="${y + barH + 1}" stroke="#c0392b" stroke-width="2.5"/>`,
      );
    }
  });
  const ly = height - 10;
  const legend = [...SERIES.map((name) => LEGEND[name]), "our goal"];
  legend.forEach((text, k) => {
    const lx = left + k * 110;
    out.push(
      k < SERIES.length
        ? `<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${COLORS[SERIES[k] as string]}"/>`
        : `<line x1="${lx + 5}" y1="${ly - 10}" x2="${lx + 5}" y2="${ly + 1}" stroke="#c0392b" stroke-width="2.5"/>`,
      `<text x="${lx + 14}" y="${ly}">${esc(text)}</text>`,
    );
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
