/**
 * The issue's point 5 as a table: per scenario (a)-(g), ours on each engine beside HAProxy and
 * nginx, each engine's main figure as a ratio to the better of the two references in the same
 * run, and which of the point's goals each engine meets. Written into the run's markdown
 * (`bench/run.ts`), and printed for a results file:
 *
 *   npx tsx bench/lib/side-by-side.ts bench/results/partial.json
 *
 * Goals (issue 22, point 5): CPU per full handshake (a), per resumed handshake (b), per
 * keep-alive request (c), per passthrough connection (e) and memory per idle terminated
 * connection (g) at or below the best reference; passthrough CPU per MiB (d) and added p50
 * latency (f) at parity or better, parity being within `PARITY` of the best reference (the
 * paired A/A noise in BENCHMARKS.md "Runs and ratios" is about ±5 %).
 * Then the control plane per engine (i), which has no reference and no goal: time from a
 * registration until routable and CPU per registration, per engine.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Row } from "./report.js";

export const ENGINES = [
  { target: "ours", label: "ours, node engine" },
  { target: "ours-haproxy", label: "ours, haproxy engine" },
] as const;
const REFERENCES = ["haproxy", "nginx"] as const;
export const PARITY = 1.05;

const GOALS: Readonly<Record<string, { what: string; limit: number }>> = {
  a: { what: "CPU per full handshake", limit: 1 },
  b: { what: "CPU per resumed handshake", limit: 1 },
  c: { what: "CPU per keep-alive request", limit: 1 },
  d: { what: "passthrough CPU per MiB (parity)", limit: PARITY },
  e: { what: "CPU per passthrough connection", limit: 1 },
  f: { what: "added p50 latency (parity)", limit: PARITY },
  g: { what: "memory per idle terminated connection", limit: 1 },
};

/** The figure point 5 compares: (f) added p50, (g) bytes per connection, else CPU per op. */
function figure(row: Row | undefined): number | undefined {
  const v =
    row?.scenario === "f"
      ? row.addedP50Us
      : row?.scenario === "g"
        ? row.bytesPerConn
        : row?.cpuUsPerOp;
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function show(scenario: string, v: number | undefined): string {
  if (v === undefined) return "-";
  if (scenario === "f") return `+${v.toFixed(0)} µs`;
  if (scenario === "g") return `${(v / 1024).toFixed(1)} KiB`;
  return `${v.toFixed(scenario === "c" ? 1 : 0)} µs`;
}

export interface Judged {
  readonly scenario: string;
  readonly best: { readonly target: string; readonly value: number } | undefined;
  /** Per engine target: its figure ÷ the best reference's. */
  readonly ratios: ReadonlyMap<string, number>;
}

export function judge(rows: readonly Row[]): Judged[] {
  return Object.keys(GOALS).map((scenario) => {
    const get = (t: string) => figure(rows.find((r) => r.scenario === scenario && r.target === t));
    const refs = REFERENCES.map((target) => ({ target, value: get(target) })).filter(
      (r): r is { target: (typeof REFERENCES)[number]; value: number } => r.value !== undefined,
    );
    const best = refs.sort((x, y) => x.value - y.value)[0];
    const ratios = new Map<string, number>();
    for (const { target } of ENGINES) {
      const v = get(target);
      if (v !== undefined && best && best.value > 0) ratios.set(target, v / best.value);
    }
    return { scenario, best, ratios };
  });
}

const ms = (us: number | null | undefined, digits: number): string =>
  us == null || !Number.isFinite(us) ? "-" : `${(us / 1000).toFixed(digits)} ms`;

/** (i)'s figures per engine; empty when (i) did not run. */
function controlPlane(rows: readonly Row[]): string[] {
  const per = ENGINES.map(({ target }) =>
    rows.find((r) => r.scenario === "i" && r.target === target),
  );
  if (per.every((r) => r === undefined)) return [];
  const line = (what: string, cell: (r: Row) => string) =>
    `| (i) | ${what} | ${per.map((r) => (r ? cell(r) : "-")).join(" | ")} |`;
  return [
    "| scen | control plane | ours, node | ours, haproxy |",
    "| :--- | :--- | ---: | ---: |",
    line("registration until routable by app, p50", (r) => ms(r.p50Us, 0)),
    line("registration until routable by app, p99", (r) => ms(r.p99Us, 0)),
    line("until routable by instance name, p50", (r) => ms(r.instanceRoutableP50Us, 0)),
    line("runtime CPU per registration", (r) => ms(r.cpuUsPerOp, 1)),
    line("HAProxy CPU per registration", (r) => ms(r.haproxyCpuUsPerRegistration, 1)),
    line("not routable within the bound", (r) => String(r.errors ?? 0)),
  ];
}

/** The markdown tables and the goal lines; empty when no engine ran. */
export function sideBySide(rows: readonly Row[]): string[] {
  const cp = controlPlane(rows);
  const goals = goalTable(rows);
  return goals.length > 0 && cp.length > 0 ? [...goals, "", ...cp] : [...goals, ...cp];
}

function goalTable(rows: readonly Row[]): string[] {
  const judged = judge(rows).filter((j) => j.ratios.size > 0);
  if (judged.length === 0) return [];
  const get = (s: string, t: string) =>
    figure(rows.find((r) => r.scenario === s && r.target === t));
  const lines = [
    "| scen | figure | ours, node | ours, haproxy | HAProxy | nginx | best ref | node ÷ best | haproxy engine ÷ best |",
    "| :--- | :--- | ---: | ---: | ---: | ---: | :--- | ---: | ---: |",
  ];
  for (const j of judged) {
    const s = j.scenario;
    const r = (t: string) => {
      const v = j.ratios.get(t);
      return v === undefined ? "-" : `${v.toFixed(2)}×`;
    };
    lines.push(
      `| (${s}) | ${GOALS[s]?.what} | ${show(s, get(s, "ours"))} | ${show(s, get(s, "ours-haproxy"))} | ${show(s, get(s, "haproxy"))} | ${show(s, get(s, "nginx"))} | ${j.best?.target ?? "-"} | ${r("ours")} | ${r("ours-haproxy")} |`,
    );
  }
  lines.push("");
  for (const { target, label } of ENGINES) {
    const met = judged.filter(
      (j) => (j.ratios.get(target) ?? Number.POSITIVE_INFINITY) <= (GOALS[j.scenario]?.limit ?? 0),
    );
    const measured = judged.filter((j) => j.ratios.has(target));
    lines.push(
      `- ${label}: meets ${met.length} of ${measured.length} goals${met.length > 0 ? ` (${met.map((j) => `(${j.scenario})`).join(", ")})` : ""}`,
    );
  }
  return lines;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: side-by-side.ts <results.json>");
  const rows = JSON.parse(readFileSync(file, "utf8")) as Row[];
  process.stdout.write(`${sideBySide(rows).join("\n")}\n`);
}
