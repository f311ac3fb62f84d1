/**
 * Scenario (i), the control plane per engine: our gateway as a host runs it (`gateway run`, the
 * soak's `startSoakGateway`: RPC, the real RegistrationService, state file and wireguard-go in a
 * network namespace) with `core.proxy.engine` = node, then haproxy, one proxy worker each.
 * CVMs register over the RPC port with RA-TLS client certificates, each one of an app of its
 * own; its CVM end of the tunnel (one wireguard-go, given each new instance's key) then
 * handshakes, as a booting CVM does after its answer. Per engine:
 *
 * - until routable: after each answer, a backend on the instance's address (the tunnel network
 *   is on this host's loopback) answers with that address, and TLS requests through the gateway
 *   to `<app-id>-<port>.<base>` (and, apart, `<instance-id>-<port>`, which needs no health) go
 *   out every `PROBE_GAP_MS` until one comes back from it, at most `BOUND_MS`. The app's name
 *   needs the instance healthy: its handshake read by the health poll (`POLL`), then the data
 *   plane told (node: the workers; haproxy: a reconcile pass over the runtime API).
 * - CPU per registration: `count` more registrations one after another (no probes), then a
 *   settle of two polls; the CPU time of the runtime's process group (primary and workers, each
 *   thread's `schedstat`) and of the commands it ran and waited for (`wg`, `ip`), HAProxy's
 *   group (master and workers) apart; less what the same processes spend idle, measured just
 *   before and scaled to as long.
 *   The gateway's wireguard-go is not counted (not our code; both engines share it).
 *
 *   npx tsx bench/registration/engines.ts [--count 20] [--probed 20] [--out FILE]
 *
 * Writes bench/results/engines.json (or FILE). Needs root, wireguard-go, wg, ip, setpriv and
 * haproxy. `npm run bench` runs it as scenario (i).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { NODE_FLAGS } from "../../host/layout.js";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import { createCa, issueLeaf, type TestCa, TEST_DOMAIN } from "../../testkit/certs.js";
import { until } from "../../testkit/poll.js";
import { proxyRequest } from "../../testkit/requests.js";
import { buildSoak } from "../lib/build.js";
import { freePort } from "../lib/net.js";
import { CLK_TCK, groupMembers, ProcessSet, sleep } from "../lib/procs.js";
import { type SoakGateway, startSoakGateway } from "../soak/gateway.js";
import { type BenchCvm, fleet } from "./common.js";
import { type EngineResult, type EnginesResult, engineLines } from "./engines-stats.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const { values } = parseArgs({
  options: {
    count: { type: "string", default: "20" },
    probed: { type: "string", default: "20" },
    out: { type: "string" },
  },
});
const COUNT = Number(values.count);
const PROBED = Number(values.probed);
if (!(COUNT > 0 && PROBED > 0)) throw new Error("--count and --probed must be positive");
const out = values.out ?? join(ROOT, "bench", "results", "engines.json");

/** Short, so the poll's wait does not hide the engines' part; a host polls every 10 s. */
const POLL = "250ms";
const POLL_MS = 250;
const BOUND_MS = 15_000;
const PROBE_GAP_MS = 10;
const ENGINES = [
  { target: "ours", engine: "node" },
  { target: "ours-haproxy", engine: "haproxy" },
] as const;

const progress = (line: string): void => {
  process.stdout.write(`  (i) ${line}\n`);
};

/** CPU ns of `pid`'s live threads (`schedstat`: ns, where `stat`'s ticks are 10 ms). */
function threadsNs(pid: number): number {
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8");
      ns += Number(text.split(" ")[0]) || 0;
    }
  } catch {
    // ended meanwhile
  }
  return ns;
}

/**
 * CPU ms of a process group: its live members' threads, and the processes they waited for
 * (the runtime's `wg` and `ip` commands; HAProxy's workers ended by a reload), in ticks.
 */
function groupCpuMs(pgid: number): number {
  let ms = 0;
  for (const s of groupMembers(pgid))
    ms += threadsNs(s.pid) / 1e6 + (s.childTicks * 1000) / CLK_TCK;
  return ms;
}

/** One CVM's backend: answers every request with the address it was reached on. */
async function listenOn(ip: string, port: number): Promise<Server> {
  const server = createServer((req, res) => res.end(req.socket.localAddress ?? ""));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, ip, resolve);
  });
  return server;
}

/** Ms from `since` until a request to `name` comes back from `ip`'s backend; null past the bound. */
async function reachedAfter(
  gw: SoakGateway,
  ca: TestCa,
  name: string,
  ip: string,
  since: number,
): Promise<number | null> {
  while (performance.now() - since < BOUND_MS) {
    const answer = await proxyRequest(gw.proxyPort, name, ca, 2000).catch(() => undefined);
    if (answer?.status === 200 && answer.text === ip) return performance.now() - since;
    await sleep(PROBE_GAP_MS);
  }
  return null;
}

interface Registered {
  readonly cvm: BenchCvm;
  readonly ip: string;
  /** When the answer came (performance.now()). */
  readonly at: number;
  /** The CVM's WireGuard key, for its end of the tunnel (`connectPeer`). */
  readonly privateKey: string;
}

/** Registers `base` with a fresh WireGuard key. */
async function register(gw: SoakGateway, base: BenchCvm): Promise<Registered> {
  const keys = generateWgKeyPair();
  const cvm = { ...base, publicKey: keys.publicKey };
  const ip = await gw.register(cvm);
  return { cvm, ip, at: performance.now(), privateKey: keys.privateKey };
}

async function measureEngine(
  o: {
    ps: ProcessSet;
    dir: string;
    bundle: string;
    ca: TestCa;
    leaf: ReturnType<typeof issueLeaf>;
  },
  { target, engine }: (typeof ENGINES)[number],
): Promise<EngineResult> {
  const gw = await startSoakGateway({
    ps: o.ps,
    dir: join(o.dir, engine),
    bundle: o.bundle,
    nodeFlags: NODE_FLAGS,
    certFile: o.leaf.certFile,
    keyFile: o.leaf.keyFile,
    settings: { engine, workers: 1, handshakePollInterval: POLL },
  });
  const servers: Server[] = [];
  try {
    const master =
      engine === "haproxy"
        ? await until(
            "HAProxy's pid file",
            () =>
              Number(readFileSync(join(gw.stateDir, "haproxy", "haproxy.pid"), "utf8").trim()) ||
              undefined,
            10_000,
          )
        : undefined;
    progress(`${engine} engine: gateway ${gw.pid}${master ? `, HAProxy master ${master}` : ""}`);
    const port = await freePort();
    const cvms = fleet(1 + PROBED + COUNT, 1 + PROBED + COUNT); // an app per instance
    const probeOne = async (base: BenchCvm) => {
      const r = await register(gw, base);
      servers.push(await listenOn(r.ip, port));
      const name = (id: string) => `${id}-${port}.${TEST_DOMAIN}`;
      // The probes start at once; the CVM's end of the tunnel comes up meanwhile.
      const probes = Promise.all([
        reachedAfter(gw, o.ca, name(r.cvm.appId), r.ip, r.at),
        reachedAfter(gw, o.ca, name(r.cvm.instanceId), r.ip, r.at),
      ]);
      await gw.connectPeer(r.privateKey);
      const [app, instance] = await probes;
      return { app, instance };
    };

    // The first one starts the CVM's wireguard-go and warms both sides; not counted.
    if ((await probeOne(cvms[0] as BenchCvm)).app === null)
      throw new Error(
        `${engine} engine: the first registration never became routable; see ${gw.logFile}`,
      );
    const appRoutableMs: (number | null)[] = [];
    const instanceRoutableMs: (number | null)[] = [];
    for (const [k, base] of cvms.slice(1, 1 + PROBED).entries()) {
      const { app, instance } = await probeOne(base);
      appRoutableMs.push(app);
      instanceRoutableMs.push(instance);
      progress(
        `${engine} engine: registration ${k + 1}/${PROBED} routable by app after ${app === null ? `NOT within ${BOUND_MS} ms` : `${app.toFixed(0)} ms`}, by instance after ${instance === null ? "-" : `${instance.toFixed(0)} ms`}`,
      );
    }

    // CPU: idle first, then `COUNT` registrations and a settle, over the same processes.
    const cpu = () => ({
      runtime: groupCpuMs(gw.pid),
      haproxy: master === undefined ? 0 : groupCpuMs(master),
      at: performance.now(),
    });
    await sleep(2 * POLL_MS); // the probes' connections end
    const idleStart = cpu();
    await sleep(3000);
    const idleEnd = cpu();
    for (const base of cvms.slice(1 + PROBED)) {
      await gw.connectPeer((await register(gw, base)).privateKey);
    }
    await sleep(2 * POLL_MS + 1000);
    const end = cpu();
    if (!gw.alive()) throw new Error(`${engine} engine: the gateway died; see ${gw.logFile}`);
    const windowMs = end.at - idleEnd.at;
    const scale = windowMs / (idleEnd.at - idleStart.at);
    const idleRuntime = (idleEnd.runtime - idleStart.runtime) * scale;
    const idleHaproxy = (idleEnd.haproxy - idleStart.haproxy) * scale;
    const result: EngineResult = {
      target,
      engine,
      appRoutableMs,
      instanceRoutableMs,
      registrations: COUNT,
      runtimeCpuMs: end.runtime - idleEnd.runtime - idleRuntime,
      haproxyCpuMs: master === undefined ? null : end.haproxy - idleEnd.haproxy - idleHaproxy,
      idleCpuMs: idleRuntime + idleHaproxy,
      windowMs,
    };
    return result;
  } finally {
    for (const s of servers) s.close();
    await gw.stop();
  }
}

async function main(): Promise<void> {
  const ps = new ProcessSet();
  const dir = mkdtempSync(join(tmpdir(), "gw-engines-"));
  const ca = createCa();
  process.once("exit", () => ps.killAllNow());
  let failed = true;
  try {
    const leaf = issueLeaf(ca, { key: "ec" });
    const { gateway: bundle } = await buildSoak(ROOT);
    const loadAverageStart = loadavg()[0] ?? Number.NaN;
    const engines: EngineResult[] = [];
    for (const e of ENGINES) engines.push(await measureEngine({ ps, dir, bundle, ca, leaf }, e));
    const result: EnginesResult = {
      date: new Date().toISOString(),
      handshakePollInterval: POLL,
      boundMs: BOUND_MS,
      loadAverageStart,
      engines,
    };
    for (const line of engineLines(result)) progress(line);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    progress(`wrote ${out}`);
    failed = false;
  } finally {
    await ps.stopAll();
    ca.cleanup();
    if (failed) process.stdout.write(`  (i) logs kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nengines bench: ${signal}\n`);
    process.exit(130);
  });
}

await main();
