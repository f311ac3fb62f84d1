/**
 * The runtime API commands that take HAProxy from what it holds (`Applied`) to what the
 * directory asks (`Desired`), fewest first. Pure.
 *
 * Order: servers are added and made ready before a map entry can point at their slot; map
 * entries go before servers are put in maintenance, so a name never routes to a slot whose
 * last server just stopped taking connections (it goes to Node instead).
 *
 * A removed instance's server is put in maintenance, not cut: the Node engine lets the open
 * connections of an instance that left the directory run to their end (the bridge holds its
 * sockets; nothing looks the instance up again), and the CVM may just be registering again.
 * So no `shutdown sessions server`: the server is deleted once its last connection has ended
 * (HAProxy refuses `del server` before), retried on every pass until then.
 */
import type { Desired, MapContents } from "./desired.js";
import { MAPS } from "./layout.js";

export interface AppliedServer {
  readonly slot: string;
  readonly name: string;
  readonly ip: string;
  readonly ready: boolean;
}

export interface Applied {
  /** By `<slot>/<server>`. */
  readonly servers: ReadonlyMap<string, AppliedServer>;
  readonly maps: MapContents;
}

export interface Command {
  readonly command: string;
  /**
   * A failure is expected and harmless: `del server` while connections remain. The pass goes
   * on, and the next one tries again.
   */
  readonly mayFail?: boolean;
}

type MapName = keyof MapContents;
const MAP_NAMES: readonly MapName[] = ["apps", "instances", "owners", "custom"];

function mapCommands(
  file: string,
  from: ReadonlyMap<string, string>,
  to: ReadonlyMap<string, string>,
): { upserts: Command[]; deletes: Command[] } {
  const upserts: Command[] = [];
  const deletes: Command[] = [];
  for (const [key, value] of to) {
    const old = from.get(key);
    if (old === undefined) upserts.push({ command: `add map ${file} ${key} ${value}` });
    else if (old !== value) upserts.push({ command: `set map ${file} ${key} ${value}` });
  }
  for (const key of from.keys()) {
    if (!to.has(key)) deletes.push({ command: `del map ${file} ${key}` });
  }
  return { upserts, deletes };
}

/**
 * The commands, in order. `poolSize`: servers of slots beyond it are left out (the caller
 * grows the pool with a reload first). `mapFile` names a map as HAProxy loaded it.
 */
export function planCommands(
  desired: Desired,
  applied: Applied,
  poolSize: number,
  mapFile: (name: (typeof MAPS)[MapName]) => string,
): Command[] {
  const adds: Command[] = [];
  const retire: Command[] = [];
  const deletes: Command[] = [];
  for (const [key, want] of desired.servers) {
    if (Number(want.slot.slice(want.slot.indexOf("_") + 1)) >= poolSize) continue;
    const have = applied.servers.get(key);
    if (!have) {
      const pp = want.proxyV2 ? " send-proxy-v2" : "";
      adds.push({ command: `add server ${key} ${want.ip}${pp}` });
      if (want.ready) adds.push({ command: `set server ${key} state ready` });
      continue;
    }
    if (have.ip !== want.ip) adds.push({ command: `set server ${key} addr ${want.ip}` });
    if (have.ready !== want.ready) {
      const step = { command: `set server ${key} state ${want.ready ? "ready" : "maint"}` };
      (want.ready ? adds : retire).push(step);
    }
  }
  for (const [key, have] of applied.servers) {
    if (desired.servers.has(key)) continue;
    if (have.ready) retire.push({ command: `set server ${key} state maint` });
    deletes.push({ command: `del server ${key}`, mayFail: true });
  }
  const upserts: Command[] = [];
  const mapDeletes: Command[] = [];
  for (const name of MAP_NAMES) {
    const { upserts: u, deletes: d } = mapCommands(
      mapFile(MAPS[name]),
      applied.maps[name],
      desired.maps[name],
    );
    upserts.push(...u);
    mapDeletes.push(...d);
  }
  return [...adds, ...upserts, ...mapDeletes, ...retire, ...deletes];
}

/** A map file's text: `<key> <value>` lines, sorted, as HAProxy loads it at start. */
export function mapFileText(entries: ReadonlyMap<string, string>): string {
  return [...entries]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key} ${value}\n`)
    .join("");
}
