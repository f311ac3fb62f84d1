/**
 * The processes that carry a test gateway's data plane, which the suite measures after each
 * part (health.ts): the gateway's own process, and with the HAProxy engine also HAProxy's
 * master and its workers. HAProxy is found as the runtime finds it (engine/haproxy/process.ts):
 * through the pid file in `<dirname(state_path)>/haproxy/`; its workers are the master's
 * children in /proc.
 *
 * The runtime restarts a HAProxy that died, so a crash may not leave a dead process behind:
 * `Processes.alive` compares the pids with the ones first seen, and a changed master or worker
 * pid counts as a crash.
 */
import { readdirSync, readFileSync } from "node:fs";
import { haproxyMaster, running } from "../../testkit/haproxy.js";

export type Engine = "node" | "haproxy";
export const ENGINES: readonly Engine[] = ["node", "haproxy"];

/** One measured process: `gateway`, `haproxy master`, `haproxy worker` (one per worker). */
export interface DataPlaneProcess {
  readonly name: string;
  readonly pid: number;
}

/** The children of `pid` (all its threads' children, from /proc). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out.sort((a, b) => a - b);
}

/** The data-plane processes now: the gateway, then HAProxy's master and workers if any. */
export function dataPlaneProcesses(gatewayPid: number, engineDir?: string): DataPlaneProcess[] {
  const list: DataPlaneProcess[] = [{ name: "gateway", pid: gatewayPid }];
  if (engineDir === undefined) return list;
  const master = haproxyMaster(engineDir);
  if (master === undefined) return list;
  list.push({ name: "haproxy master", pid: master });
  const workers = childrenOf(master).filter(running);
  for (const [i, pid] of workers.entries()) {
    list.push({ name: workers.length > 1 ? `haproxy worker ${i + 1}` : "haproxy worker", pid });
  }
  return list;
}

/**
 * The set first seen, and whether each of them still runs under the same pid: a process gone,
 * or HAProxy's master or worker replaced (the runtime restarted it), is a crash.
 */
export class Processes {
  readonly #gatewayPid: number;
  readonly #engineDir: string | undefined;
  readonly first: readonly DataPlaneProcess[];

  constructor(gatewayPid: number, engineDir?: string) {
    this.#gatewayPid = gatewayPid;
    this.#engineDir = engineDir;
    this.first = dataPlaneProcesses(gatewayPid, engineDir);
    if (engineDir !== undefined && this.first.length < 3) {
      throw new Error(`HAProxy's master and worker not found under ${engineDir}`);
    }
  }

  /** The processes now (as `dataPlaneProcesses`). */
  now(): DataPlaneProcess[] {
    return dataPlaneProcesses(this.#gatewayPid, this.#engineDir);
  }

  /** What changed since `first`: empty while every process runs under its first pid. */
  changes(): string[] {
    const now = this.now();
    const key = (p: DataPlaneProcess) => `${p.name} ${p.pid}`;
    const seen = new Set(now.filter((p) => running(p.pid)).map(key));
    const was = new Set(this.first.map(key));
    return [
      ...this.first.filter((p) => !seen.has(key(p))).map((p) => `${key(p)} is gone`),
      ...now.filter((p) => !was.has(key(p))).map((p) => `${key(p)} is new (a restart)`),
    ];
  }
}
