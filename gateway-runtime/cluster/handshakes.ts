/**
 * The handshakes a host reports for recycling (`handshakes/<name>`, ARCHITECTURE.md "State on
 * a host"): per instance, the latest WireGuard handshake it saw, in whole seconds. One key per
 * host keeps the region at one write per host per period: 4,000 instances of 40-hex-digit ids
 * take about 220 KB, far under etcd's 1.5 MiB request limit. Pure, no I/O.
 */

export interface HandshakeReport {
  /** When the host wrote it, ms since the epoch. */
  readonly at: number;
  /** Instance id → latest handshake, ms since the epoch (whole seconds). */
  readonly seen: ReadonlyMap<string, number>;
}

export function encodeHandshakes(at: number, seen: ReadonlyMap<string, number>): string {
  const out: Record<string, number> = {};
  for (const [id, ms] of seen) if (ms > 0) out[id] = Math.floor(ms / 1000);
  return JSON.stringify({ at: Math.floor(at / 1000), seen: out });
}

/** Undefined when the value is not a report (a hand edit): it then counts for nothing. */
export function decodeHandshakes(json: string): HandshakeReport | undefined {
  try {
    const raw = JSON.parse(json) as { at?: unknown; seen?: unknown };
    if (typeof raw?.at !== "number" || typeof raw.seen !== "object" || raw.seen === null)
      return undefined;
    const seen = new Map<string, number>();
    for (const [id, s] of Object.entries(raw.seen as Record<string, unknown>))
      if (typeof s === "number" && s > 0) seen.set(id, s * 1000);
    return { at: raw.at * 1000, seen };
  } catch {
    return undefined;
  }
}

/** Per instance, the freshest handshake any report has. */
export function freshest(reports: Iterable<HandshakeReport>): Map<string, number> {
  const out = new Map<string, number>();
  for (const report of reports)
    for (const [id, ms] of report.seen) if (ms > (out.get(id) ?? 0)) out.set(id, ms);
  return out;
}

/**
 * How often a host reports: often enough that a live instance's freshest report is never older
 * than a fraction of the recycle timeout, seldom enough to spare etcd's history (every write
 * of the whole report is kept until etcd compacts). A tenth of the timeout, within
 * [poll interval, 5 min].
 */
export function reportPeriodMs(recycleTimeoutMs: number, pollMs: number): number {
  return Math.max(pollMs, Math.min(recycleTimeoutMs / 10, 5 * 60_000));
}
