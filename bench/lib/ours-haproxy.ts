/**
 * Target "ours-haproxy": the bench gateway bundle (`bench/gateway-bench.ts`) with
 * `core.proxy.engine = "haproxy"`, as `gateway run` serves with it: HAProxy (Debian's, master
 * and one worker thread) on the port, its configuration rendered under `<state dir>/haproxy`,
 * the Node data plane behind it as the slow path. The same certificate, app, instances and
 * backend as "ours"; the curves are the engine's (`X25519:P-256`).
 *
 * Its CPU and memory are every process of it: the Node runtime's group and HAProxy's, which
 * the engine starts as a group of its own (master and workers), attached to the runtime's
 * `Proc` so both are counted and stopped together. The ready line names the master; it must
 * be the pid file's and lead its group, or the figures would miss it.
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { waitForPort } from "./net.js";
import { groupMembers, readStat } from "./procs.js";
import {
  APP_ID,
  type Backend,
  type Env,
  isPort,
  type OursOptions,
  routeNames,
  startNodeEntry,
  type Target,
} from "./targets.js";

export async function startOursHaproxy(
  env: Env,
  backend: Backend,
  opts: OursOptions,
): Promise<Target> {
  const name = "ours-haproxy";
  // A fresh directory per start: the engine adopts a HAProxy its pid file names.
  const stateDir = join(env.dir, name);
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const args = [
    ...["--cert", env.certFile, "--key", env.keyFile, "--app", APP_ID],
    ...["--instances", String(opts.instances ?? 1)],
    ...["--engine", "haproxy", "--state-dir", stateDir],
  ];
  const { proc, value } = await startNodeEntry(env, { ...opts, name }, args, (v) =>
    isPort(v.port) && isPort(v.haproxy) ? { port: v.port, master: v.haproxy } : undefined,
  );
  env.ps.attach(proc, value.master);
  const pidFile = Number(readFileSync(join(stateDir, "haproxy", "haproxy.pid"), "utf8").trim());
  const group = groupMembers(value.master);
  if (
    pidFile !== value.master ||
    readStat(String(value.master))?.pgrp !== value.master ||
    group.length < 2
  ) {
    throw new Error(
      `${name}: HAProxy's master ${value.master} (pid file ${pidFile}) does not lead a group with its workers: ${JSON.stringify(group)}`,
    );
  }
  await waitForPort(value.port, proc);
  const names = routeNames(backend);
  return {
    name,
    proc,
    term: { port: value.port, sni: names.term },
    pass: { port: value.port, sni: names.pass },
  };
}
