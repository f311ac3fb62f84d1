/** The stdout (and BENCHMARKS.md) rendering of result rows and goals. */
import type { Goal, Row } from "./report.js";

const dash = "-";

export function fmt(x: number | null | undefined, digits = 0): string {
  if (x == null || !Number.isFinite(x)) return dash;
  const abs = Math.abs(x);
  if (abs >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  return x.toFixed(digits);
}

const pct = (x: number | null | undefined): string =>
  x == null || !Number.isFinite(x) ? dash : `${(x * 100).toFixed(0)}%`;
const times = (x: number | null | undefined): string =>
  x == null || !Number.isFinite(x) ? dash : `${x.toFixed(2)}×`;

interface Column {
  readonly head: string;
  readonly cell: (r: Row) => string;
  readonly left?: boolean;
}

const COLUMNS: readonly Column[] = [
  { head: "scen", cell: (r) => `(${r.scenario})`, left: true },
  { head: "target", cell: (r) => r.target, left: true },
  {
    head: "throughput/s",
    cell: (r) =>
      r.throughput == null ? dash : `${fmt(r.throughput, r.unit === "MiB" ? 1 : 0)} ${r.unit}`,
  },
  { head: "±", cell: (r) => pct(r.throughputSpread) },
  {
    head: "main figure",
    cell: (r) => {
      if (r.scenario === "f") return r.addedP50Us == null ? dash : `+${fmt(r.addedP50Us)} µs p50`;
      if (r.scenario === "g")
        return r.bytesPerConn == null ? dash : `${fmt(r.bytesPerConn / 1024, 1)} KiB/conn`;
      if (r.scenario === "i")
        return r.cpuUsPerOp == null ? dash : `${fmt(r.cpuUsPerOp / 1000, 1)} ms CPU/${r.unit}`;
      return r.cpuUsPerOp == null
        ? dash
        : `${fmt(r.cpuUsPerOp, r.cpuUsPerOp < 10 ? 2 : 1)} µs/${r.unit}`;
    },
  },
  { head: "±", cell: (r) => pct(r.spread) },
  { head: "×HAProxy", cell: (r) => times(r.ratioToHaproxy) },
  { head: "×direct", cell: (r) => times(r.ratioToDirect) },
  { head: "p50 µs", cell: (r) => fmt(r.p50Us) },
  { head: "p99 µs", cell: (r) => fmt(r.p99Us) },
  { head: "resumed", cell: (r) => pct(r.reuseRate) },
  { head: "px util", cell: (r) => pct(r.proxyUtil) },
  {
    head: "core0/cl",
    cell: (r) =>
      r.proxyCoreBusy == null ? dash : `${pct(r.proxyCoreBusy)}/${pct(r.clientCoreBusy)}`,
  },
  { head: "errors", cell: (r) => (r.errors ? String(r.errors) : dash) },
];

function render(rows: readonly Row[], sep: string, edge: boolean): string[] {
  const cells = rows.map((r) => COLUMNS.map((c) => c.cell(r)));
  const widths = COLUMNS.map((c, i) =>
    Math.max(c.head.length, ...cells.map((row) => (row[i] ?? "").length)),
  );
  const line = (values: readonly string[]): string => {
    const body = values
      .map((v, i) => (COLUMNS[i]?.left ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0)))
      .join(sep);
    return edge ? `${sep.trimStart()}${body}${sep.trimEnd()}` : body;
  };
  const out = [line(COLUMNS.map((c) => c.head))];
  if (edge)
    out.push(
      line(
        widths.map((w, i) =>
          COLUMNS[i]?.left
            ? `:${"-".repeat(Math.max(1, w - 1))}`
            : `${"-".repeat(Math.max(1, w - 1))}:`,
        ),
      ),
    );
  else out.push(widths.map((w) => "-".repeat(w)).join(sep));
  let last: string | undefined;
  for (const [i, r] of rows.entries()) {
    if (!edge && last !== undefined && last !== r.scenario) out.push("");
    last = r.scenario;
    out.push(line(cells[i] ?? []));
  }
  return out;
}

export function textTable(rows: readonly Row[]): string {
  return render(rows, "  ", false).join("\n");
}

export function markdownTable(rows: readonly Row[]): string {
  return render(rows, " | ", true).join("\n");
}

export function goalLines(goals: readonly Goal[]): string[] {
  return goals.map((g) => {
    const verdict = g.met === null ? "not measured" : g.met ? "MET" : "MISSED";
    const value = g.value === null ? dash : g.value.toFixed(2);
    return `${verdict.padEnd(12)} ${g.text}: ${value} (goal ${g.limit})`;
  });
}

export function scenarioLegend(rows: readonly Row[]): string[] {
  const seen = new Map<string, string>();
  for (const r of rows) if (!seen.has(r.scenario)) seen.set(r.scenario, r.title);
  return [...seen.entries()].map(([id, title]) => `(${id}) ${title}`);
}
