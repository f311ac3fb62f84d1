/**
 * A region's control plane at scale: 4,000 CVMs registered through three gateway hosts at once,
 * each host a real RegistrationService on its own EtcdRegistrationStore (its own etcd client)
 * and WireGuardManager (wireguard-go in a network namespace of its own), sharing a real
 * three-member etcd cluster on loopback. Attestation is the stub of common.ts.
 *
 *   npx tsx bench/registration/region.ts [--count 4000] [--concurrency 128] [--out FILE]
 *
 * Measures the registration latency (p50/p99) with `concurrency` in flight spread over the
 * hosts; duplicate addresses (must be zero: checked in each host's view and in etcd itself);
 * and propagation: for each registration, the time from its answer on one host until the other
 * two route it (it is in their directory, which happens once their WireGuard has the peer).
 * And a host's death: a region node in a process of its own (node-child.ts) is killed with
 * SIGKILL, and the time until the other hosts drop it from their node list (so from the servers
 * of every RegisterCvm answer) is measured, `DEATHS` times. Its CVMs need no such wait: every
 * host holds every CVM's peer all along, so the others serve them throughout.
 * Writes bench/results/region.json (or FILE). Needs root, etcd, wireguard-go and wg.
 * `npm run bench` runs it as scenario (k).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeMembership } from "../../gateway-runtime/cluster/index.js";
import { Secret } from "../../gateway-runtime/config/secret.js";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import { silentLogger } from "../../gateway-runtime/log/index.js";
import { RegistrationService } from "../../gateway-runtime/registration/service.js";
import { connectEtcd } from "../../gateway-runtime/registry/etcd-client.js";
import { EtcdRegistrationStore } from "../../gateway-runtime/registry/etcd-store.js";
import { type Instance, MemoryDirectory } from "../../gateway-runtime/registry/index.js";
import { prefixedRunner } from "../../gateway-runtime/wg/exec.js";
import { WireGuardManager } from "../../gateway-runtime/wg/manager.js";
import { cleanupStale, NetnsHarness } from "../../testkit/netns.js";
import { startEtcdCluster } from "../../testkit/etcd.js";
import { until } from "../../testkit/poll.js";
import {
  BENCH_SETTINGS,
  benchArgs,
  benchPlan,
  fleet,
  inFlight,
  quantile,
  registerCvm,
  time,
  WG_IP,
} from "./common.js";
import { round } from "./print.js";

const args = benchArgs();
const COUNT = args.count;
const CONCURRENCY = args.concurrency;
const HOSTS = 3;
const PREFIX = "/bench-region";
const DEATHS = 5;

/**
 * Starts a region node in a child process, waits until `watcher` lists it, SIGKILLs it, and
 * resolves the ms until `watcher` no longer does.
 */
async function timeToForget(endpoints: string[], watcher: NodeMembership, name: string) {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      new URL("node-child.ts", import.meta.url).pathname,
      endpoints.join(","),
      PREFIX,
      name,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    const [line] = (await once(child.stdout, "data")) as [Buffer];
    if (!line.toString().includes("joined")) throw new Error(`node ${name}: ${line}`);
    const listed = () => watcher.nodes().some((n) => n.name === name);
    await until(`the region to list ${name}`, listed, 10_000, { everyMs: 10 });
    const killed = performance.now();
    child.kill("SIGKILL");
    await until(`the region to forget ${name}`, () => !listed(), 30_000, { everyMs: 10 });
    return performance.now() - killed;
  } finally {
    child.kill("SIGKILL");
  }
}

/** A directory that notes when each instance first joins it (it is routable from then on). */
class TimedDirectory extends MemoryDirectory {
  readonly joined = new Map<string, number>();
  override upsert(instance: Instance): void {
    if (!this.joined.has(instance.id)) this.joined.set(instance.id, performance.now());
    super.upsert(instance);
  }
}

interface Host {
  readonly store: EtcdRegistrationStore;
  readonly manager: WireGuardManager;
  readonly directory: TimedDirectory;
  readonly service: RegistrationService;
}

async function main(): Promise<void> {
  const net = new NetnsHarness();
  const dir = await mkdtemp(join(tmpdir(), "bench-region-"));
  const etcd = await startEtcdCluster(3);
  const hosts: Host[] = [];
  try {
    await cleanupStale();
    const endpoints = etcd.endpoints.map((u) => u.replace("http://", ""));
    const connect = () => connectEtcd({ endpoints, timeoutMs: 5000 });
    for (let k = 0; k < HOSTS; k++) {
      const name = `rg${k}`;
      const ns = await net.add(name);
      const client = await connect();
      const store = await EtcdRegistrationStore.open({
        client,
        prefix: PREFIX,
        plan: benchPlan(),
        timeoutMs: 5000,
        ownsClient: true,
        connectWatch: connect,
      });
      const manager = await WireGuardManager.create({
        interface: net.linkName(name),
        configPath: join(dir, name, "wg.conf"),
        privateKey: Secret.of(generateWgKeyPair().privateKey),
        listenPort: 51820,
        address: WG_IP,
        implementation: "userspace",
        log: silentLogger(),
        exec: prefixedRunner(["ip", "netns", "exec", ns]),
      });
      await manager.ensureInterface();
      const directory = new TimedDirectory();
      const service = new RegistrationService({
        ...BENCH_SETTINGS,
        server: {
          pk: generateWgKeyPair().publicKey,
          ip: WG_IP,
          endpoint: `192.0.2.${k + 1}:51820`,
        },
        store,
        directory,
        peers: manager,
      });
      await service.start();
      hosts.push({ store, manager, directory, service });
    }

    // Everyone at once, `CONCURRENCY` in flight, registration k through host k % 3.
    const cvms = fleet(COUNT, args.apps);
    const latencies: number[] = [];
    const answered = new Map<string, { at: number; host: number }>();
    const [totalMs] = await time(() =>
      inFlight(cvms, CONCURRENCY, async (c, k) => {
        const host = hosts[k % HOSTS] as Host;
        const [ms] = await time(() => registerCvm(host.service, c));
        latencies.push(ms);
        answered.set(c.instanceId, { at: performance.now(), host: k % HOSTS });
      }),
    );
    latencies.sort((a, b) => a - b);

    // Until every host routes every instance (bounded), then each one's propagation time.
    await until(
      "every host to route every instance",
      () => hosts.every((h) => h.directory.joined.size >= COUNT),
      120_000,
      { everyMs: 50 },
    );
    const propagation: number[] = [];
    for (const [id, { at, host }] of answered) {
      const others = hosts.filter((_, k) => k !== host).map((h) => h.directory.joined.get(id));
      propagation.push(Math.max(0, ...others.map((t) => (t ?? Number.POSITIVE_INFINITY) - at)));
    }
    propagation.sort((a, b) => a - b);

    // Zero duplicate addresses: in each host's view, and in what etcd itself holds.
    const views = hosts.map((h) => h.store.list().map((r) => r.ip));
    const reader = await connect();
    const stored = Object.values(
      await reader.getAll().prefix(`${PREFIX}/instances/`).strings(),
    ).map((v) => (JSON.parse(v) as { ip: string }).ip);
    reader.close();
    const duplicates = [...views, stored].map((ips) => ips.length - new Set(ips).size);
    const counts = [...views, stored].map((ips) => ips.length);

    // A host's death: until the others drop it from their node list.
    const watchClient = await connect();
    const watcher = await NodeMembership.open({
      client: watchClient,
      prefix: PREFIX,
      timeoutMs: 5000,
      ownsClient: true,
      self: {
        name: "watcher",
        wg_public_key: "",
        wg_ip: WG_IP,
        wg_endpoint: "192.0.2.8:51820",
        url: "",
        version: "bench",
        started_at: Date.now(),
      },
    });
    const forgetMs: number[] = [];
    for (let k = 0; k < DEATHS; k++)
      forgetMs.push(await timeToForget(endpoints, watcher, `dying${k}`));
    await watcher.close();
    forgetMs.sort((a, b) => a - b);

    const result = {
      date: new Date().toISOString(),
      attestation: "stub (returns the ids it is given; no certificate or quote checks)",
      setup: `${HOSTS} hosts (service + etcd store + wireguard-go each), etcd 3 members on loopback`,
      count: COUNT,
      concurrency: CONCURRENCY,
      registration: {
        totalMs: round(totalMs),
        perSecond: round((COUNT / totalMs) * 1000),
        p50Ms: round(quantile(latencies, 0.5)),
        p99Ms: round(quantile(latencies, 0.99)),
        maxMs: round(latencies.at(-1) ?? Number.NaN),
      },
      propagation: {
        p50Ms: round(quantile(propagation, 0.5)),
        p99Ms: round(quantile(propagation, 0.99)),
        maxMs: round(propagation.at(-1) ?? Number.NaN),
      },
      hostDeath: {
        deaths: DEATHS,
        droppedFromServerListsMedianMs: round(quantile(forgetMs, 0.5)),
        droppedFromServerListsMaxMs: round(forgetMs.at(-1) ?? Number.NaN),
      },
      instancesPerView: counts,
      duplicateAddresses: duplicates.reduce((a, b) => a + b, 0),
    };
    console.log(JSON.stringify(result, null, 2));
    if (result.duplicateAddresses !== 0 || counts.some((n) => n !== COUNT))
      throw new Error(
        `region bench: ${result.duplicateAddresses} duplicate addresses, views ${counts}`,
      );
    const out = args.out ?? new URL("../results/region.json", import.meta.url).pathname;
    await mkdir(join(out, ".."), { recursive: true });
    await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nwrote ${out}`);
  } finally {
    for (const h of hosts) {
      await h.manager.close().catch(() => undefined);
      await h.store.close().catch(() => undefined);
    }
    await etcd.close();
    await net.teardown();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
