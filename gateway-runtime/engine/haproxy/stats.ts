/**
 * HAProxy's counters in the runtime's own shape (`ProxySnapshot`, proxy/stats.ts), so `/metrics`
 * and `Admin.Status` keep their names with either engine (issue 22, point 3): the runtime API's
 * `show stat` CSV, read per backend slot and per server (layout.ts), then summed with the Node
 * slow path's snapshot.
 *
 * How HAProxy 2.6's fields map (checked against a live HAProxy, tests/integration/haproxy/):
 * - An app is its slot `app_<n>` (the caller says which app holds which slot). Its BACKEND row
 *   gives `active` (scur), `total` (stot: sessions sent to the slot, failed connects included,
 *   as the Node engine counts them), `bytesToBackend` (bin) and `bytesToClient` (bout). Only
 *   the slot is counted, never the hop to the terminating frontends nor `be_node`, so a
 *   connection counts once, and what reached the slow path is in Node's own snapshot.
 * - An instance is its server `i_<id>` in the slot: open connections (scur), and failed connects
 *   (econ, the attempts given up, plus wretr and wredis, the attempts retried on it or moved
 *   off it: HAProxy counts a failed attempt that is not the last as one or the other, and with
 *   `option redispatch 1` always as wredis), as Node counts each failed dial. Server stot is
 *   not used: HAProxy counts every retry there.
 * - Refusals, by the runtime's codes:
 *   - E_CONNECT_FAILED per app: the slot's servers' econ (the connection's last attempt failed);
 *   - E_NO_HEALTHY_INSTANCE per app: the slot's econ beyond its servers' (HAProxy counts a
 *     connection with no usable server there);
 *   - E_LIMIT_APP per app: the sessions the slot took that never went to a server nor failed
 *     for want of one, and are not waiting for one: those its own `tcp-request content` rules
 *     refused (stot − (lbtot − wredis) − the econ above − (scur − its servers' scur)). HAProxy
 *     2.6 counts a rule's refusal on the session's frontend (dreq) only, never on the backend;
 *   - E_HELLO_TIMEOUT: the sessions `be_hello_timeout` took (it refuses each, by a rule);
 *   - E_LIMIT_IP: the frontends' refusals (dcon, dses, dreq) less those of the slots and of
 *     `be_hello_timeout`: so the engine's per-app limit is a rule in the slot, and a rule in a
 *     frontend a per-client one;
 *   - E_TLS_HANDSHAKE: the terminating frontends' ssl_failed_handshake (no app: HAProxy
 *     terminates before it knows which slot the connection goes to).
 * - Not mapped: `be_direct` (the per-instance-id route dials one portless server for every
 *   instance, so its counters name no app or instance), the timings (HAProxy keeps averages,
 *   not the runtime's histograms), the certificate (the caller knows what it installed).
 *
 * Counters are HAProxy's since its process started: a reload starts them again, which metrics
 * see as a counter reset (as with a restarted proxy worker). A server deleted at runtime takes
 * its counters with it while its slot keeps its own, so its failures then show in the slot's
 * E_NO_HEALTHY_INSTANCE; a slot given to another app carries the previous app's totals.
 */
import { connect } from "node:net";
import { GatewayError } from "../../errors.js";
import { mergeSnapshots, type ProxySnapshot } from "../../proxy/stats.js";
import { PROXIES, SLOT_PREFIX, serverName } from "./layout.js";

/** One row of `show stat`: the proxy, the row's name (FRONTEND, BACKEND or a server), fields. */
export interface StatRow {
  readonly pxname: string;
  readonly svname: string;
  readonly fields: ReadonlyMap<string, string>;
}

export class HaproxyStatsError extends GatewayError<"E_HAPROXY_STATS"> {}

/** The terminating frontends (layout.ts), whose TLS handshakes HAProxy does. */
const TERMINATING = new Set(["fe_term", "fe_term_h2"]);
const SERVER_PREFIX = serverName("");

/** Splits one CSV line; HAProxy quotes a field holding a comma or a quote, doubling quotes. */
function splitCsv(line: string): string[] {
  const out: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      out.push(field);
      field = "";
    } else field += c;
  }
  out.push(field);
  return out;
}

/** Parses `show stat` output: a `# pxname,svname,...` header, then one row per line. */
export function parseShowStat(csv: string): StatRow[] {
  const lines = csv.split("\n").filter((line) => line.trim() !== "");
  const head = lines[0];
  if (head === undefined || !head.startsWith("# ")) {
    throw new HaproxyStatsError("E_HAPROXY_STATS", `not a show stat answer: ${head?.slice(0, 80)}`);
  }
  const names = splitCsv(head.slice(2));
  if (names[0] !== "pxname" || names[1] !== "svname") {
    throw new HaproxyStatsError("E_HAPROXY_STATS", `unexpected show stat columns: ${head}`);
  }
  return lines.slice(1).map((line) => {
    const values = splitCsv(line);
    const fields = new Map<string, string>();
    names.forEach((name, i) => {
      if (name !== "" && name !== "-") fields.set(name, values[i] ?? "");
    });
    return { pxname: values[0] ?? "", svname: values[1] ?? "", fields };
  });
}

/** A counter of `row`; empty (not applicable to this kind of row) or absent is 0. */
function counter(row: StatRow, name: string): number {
  const n = Number(row.fields.get(name) ?? "");
  return Number.isFinite(n) ? n : 0;
}

const add = (into: Record<string, number>, key: string, n: number): void => {
  if (n > 0) into[key] = (into[key] ?? 0) + n;
};

/**
 * The rows of `show stat` as a `ProxySnapshot`. `slots` maps a slot name (`app_<n>`) to the app
 * id it serves now; slots not in it (free ones) are skipped. `certificates` and `timings` are
 * passed through (HAProxy's stats have neither in the runtime's shape).
 */
export function snapshotFromStats(
  rows: readonly StatRow[],
  slots: ReadonlyMap<string, string>,
  extra: Pick<Partial<ProxySnapshot>, "certificates" | "timings"> = {},
): ProxySnapshot {
  const apps: Record<string, ProxySnapshot["apps"][string]> = {};
  const rejected: Record<string, number> = {};
  const instances: Record<string, number> = {};
  const connectFailures: Record<string, number> = {};
  /** Per slot, its servers' econ and scur: what the slot has beyond them had no server. */
  const servers = new Map<string, { econ: number; scur: number }>();
  for (const row of rows) {
    if (!row.pxname.startsWith(SLOT_PREFIX) || !slots.has(row.pxname)) continue;
    if (row.svname === "FRONTEND" || row.svname === "BACKEND") continue;
    if (!row.svname.startsWith(SERVER_PREFIX)) continue;
    const id = row.svname.slice(SERVER_PREFIX.length);
    add(instances, id, counter(row, "scur"));
    const failed = counter(row, "econ") + counter(row, "wretr") + counter(row, "wredis");
    add(connectFailures, id, failed);
    const sum = servers.get(row.pxname) ?? { econ: 0, scur: 0 };
    sum.econ += counter(row, "econ");
    sum.scur += counter(row, "scur");
    servers.set(row.pxname, sum);
  }
  let frontendDenials = 0;
  let slotDenials = 0;
  for (const row of rows) {
    if (row.svname === "FRONTEND") {
      frontendDenials += counter(row, "dcon") + counter(row, "dses") + counter(row, "dreq");
      if (TERMINATING.has(row.pxname)) {
        add(rejected, "E_TLS_HANDSHAKE", counter(row, "ssl_failed_handshake"));
      }
      continue;
    }
    if (row.pxname === PROXIES.helloTimeout && row.svname === "BACKEND") {
      const stalled = counter(row, "stot");
      add(rejected, "E_HELLO_TIMEOUT", stalled);
      slotDenials += stalled;
      continue;
    }
    const appId = slots.get(row.pxname);
    if (row.svname !== "BACKEND" || appId === undefined) continue;
    const sum = apps[appId]; // two slots for one app: only while the engine moves it
    const appRejected: Record<string, number> = { ...sum?.rejected };
    const onServers = servers.get(row.pxname) ?? { econ: 0, scur: 0 };
    const noServer = Math.max(0, counter(row, "econ") - onServers.econ);
    const waiting = Math.max(0, counter(row, "scur") - onServers.scur);
    const balanced = counter(row, "lbtot") - counter(row, "wredis"); // first choices only
    const denied = Math.max(0, counter(row, "stot") - balanced - noServer - waiting);
    slotDenials += denied;
    const refusals: [string, number][] = [
      ["E_CONNECT_FAILED", onServers.econ],
      ["E_NO_HEALTHY_INSTANCE", noServer],
      ["E_LIMIT_APP", denied],
    ];
    for (const [code, n] of refusals) {
      add(appRejected, code, n);
      add(rejected, code, n);
    }
    apps[appId] = {
      active: (sum?.active ?? 0) + counter(row, "scur"),
      total: (sum?.total ?? 0) + counter(row, "stot"),
      bytesToBackend: (sum?.bytesToBackend ?? 0) + counter(row, "bin"),
      bytesToClient: (sum?.bytesToClient ?? 0) + counter(row, "bout"),
      rejected: appRejected,
    };
  }
  add(rejected, "E_LIMIT_IP", frontendDenials - slotDenials);
  return {
    apps,
    rejected,
    instances,
    connectFailures,
    certificates: extra.certificates ?? [],
    timings: extra.timings ?? [],
  };
}

/**
 * What the admin API shows with the HAProxy engine: HAProxy's counters plus the Node slow
 * path's (which counts the connections HAProxy handed it, and serves the gateway's own names),
 * summed; the certificates and histograms of both are kept.
 */
export function mergeEngineSnapshots(
  haproxy: ProxySnapshot,
  slowPath: ProxySnapshot,
): ProxySnapshot {
  return mergeSnapshots([haproxy, slowPath]);
}

/**
 * Sends `show stat` to the runtime API socket (`FILES.api`) and resolves with the whole answer
 * (HAProxy closes the connection after it, outside interactive mode), within `timeoutMs`.
 */
export function readShowStat(socketPath: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    // Written, not ended: the answer comes, then HAProxy closes (a half-close could cut it).
    const socket = connect({ path: socketPath }, () => socket.write("show stat\n"));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new HaproxyStatsError("E_HAPROXY_STATS", `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(new HaproxyStatsError("E_HAPROXY_STATS", `${socketPath}: ${error.message}`));
    });
    socket.once("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
  });
}

/** `readShowStat` then `snapshotFromStats`: HAProxy's counters now. */
export async function haproxySnapshot(
  socketPath: string,
  slots: ReadonlyMap<string, string>,
  extra: Pick<Partial<ProxySnapshot>, "certificates" | "timings"> = {},
): Promise<ProxySnapshot> {
  return snapshotFromStats(parseShowStat(await readShowStat(socketPath)), slots, extra);
}
