/** The table `scale.ts` prints. */

export const round = (x: number): number => Math.round(x * 10) / 10;

export function print(r: {
  count: number;
  concurrency: number;
  attestation: string;
  registration: Record<string, number>;
  singleAtFullTable: Record<string, number>;
  storeAlone: Record<string, number>;
  wg: Record<string, number>;
  state: { bytes: number; loadMs: number };
}): void {
  const rows: [string, string][] = [
    [
      `register ${r.count} CVMs, ${r.concurrency} in flight`,
      `${r.registration.totalMs} ms total, ${r.registration.perSecond}/s`,
    ],
    [
      "  latency p50 / p99 / max",
      `${r.registration.p50Ms} / ${r.registration.p99Ms} / ${r.registration.maxMs} ms`,
    ],
    ["  wg syncconf runs (coalesced)", String(r.registration.wgApplies)],
    [
      "  state file writes (operations per write)",
      `${r.registration.stateWrites} (${r.registration.stateOperationsPerWrite}), ${r.registration.stateMiBWritten} MiB`,
    ],
    [
      "  the store alone, same load (group commit)",
      `${r.storeAlone.totalMs} ms, ${r.storeAlone.writes} writes (${r.storeAlone.operationsPerWrite} ops each)`,
    ],
    [
      "one registration at a full table p50 / max",
      `${r.singleAtFullTable.p50Ms} / ${r.singleAtFullTable.maxMs} ms`,
    ],
    [`wg syncconf, ${r.wg.peers} peers, no change`, `${r.wg.syncconfNoChangeMs} ms`],
    [`wg syncconf, 0 → ${r.wg.peers} peers`, `${r.wg.syncconfFromEmptyMs} ms`],
    [`wg show dump / parse, ${r.wg.peers} peers`, `${r.wg.showDumpMs} / ${r.wg.parseDumpMs} ms`],
    ["  (ip netns exec overhead, included above)", `${r.wg.nsExecOverheadMs} ms`],
    ["state file size", `${(r.state.bytes / 1024).toFixed(1)} KiB`],
    ["state file load (open + validate)", `${r.state.loadMs} ms`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(`attestation: ${r.attestation}\n`);
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
}
