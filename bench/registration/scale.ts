/**
 * Control-plane scale: 4,000 CVMs (a full /20 minus the reserved /27) registered through the
 * real RegistrationService, FileRegistrationStore (atomic JSON, fsync) and WireGuardManager
 * (real `wg syncconf` on a wireguard-go interface inside a network namespace this script makes
 * and removes). Attestation is a stub that returns the ids it is handed: TLS and certificate
 * checks are not measured here (the RPC and attestation have their own tests).
 *
 *   npx tsx bench/registration/scale.ts [--count 4000] [--concurrency 128] [--out FILE]
 *
 * Prints a table and writes bench/results/registration.json (or FILE). Needs root,
 * wireguard-go and wg. `npm run bench` runs it as scenario (r).
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Secret } from "../../gateway-runtime/config/secret.js";
import { silentLogger } from "../../gateway-runtime/log/index.js";
import { RegistrationService } from "../../gateway-runtime/registration/service.js";
import { MemoryDirectory } from "../../gateway-runtime/registry/index.js";
import { FileRegistrationStore } from "../../gateway-runtime/registry/store.js";
import { prefixedRunner } from "../../gateway-runtime/wg/exec.js";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import { WireGuardManager } from "../../gateway-runtime/wg/manager.js";
import { parseWgDump } from "../../gateway-runtime/wg/render.js";
import { cleanupStale, NetnsHarness } from "../../testkit/netns.js";
import {
  BENCH_SETTINGS,
  benchArgs,
  benchPlan,
  fleet,
  inFlight,
  median,
  quantile,
  registerCvm,
  time,
  WG_IP,
} from "./common.js";
import { print, round } from "./print.js";

const args = benchArgs();
const COUNT = args.count;
const CONCURRENCY = args.concurrency;
const APPS = args.apps;
const SAMPLES = 7;

async function samples(fn: () => Promise<unknown>, n = SAMPLES): Promise<number> {
  const out: number[] = [];
  for (let k = 0; k < n; k++) out.push((await time(fn))[0]);
  return median(out);
}

async function main(): Promise<void> {
  const net = new NetnsHarness();
  const dir = await mkdtemp(join(tmpdir(), "bench-registration-"));
  let manager: WireGuardManager | undefined;
  let store: FileRegistrationStore | undefined;
  try {
    await cleanupStale();
    const ns = await net.add("bench");
    const iface = net.linkName("bench");
    const exec = prefixedRunner(["ip", "netns", "exec", ns]);
    const plan = benchPlan();
    const statePath = join(dir, "state", "gateway-state.json");
    const configPath = join(dir, "wireguard", "wg.conf");
    const writes = { count: 0, operations: 0, bytes: 0 };
    store = await FileRegistrationStore.open(statePath, plan, {
      onWrite: (w) => {
        writes.count += 1;
        writes.operations += w.operations;
        writes.bytes += w.bytes;
      },
    });
    manager = await WireGuardManager.create({
      interface: iface,
      configPath,
      privateKey: Secret.of(generateWgKeyPair().privateKey),
      listenPort: 51820,
      address: WG_IP,
      implementation: "userspace",
      log: silentLogger(),
      exec,
    });
    await manager.ensureInterface();
    const service = new RegistrationService({
      ...BENCH_SETTINGS,
      server: { pk: generateWgKeyPair().publicKey, ip: WG_IP, endpoint: "192.0.2.1:51820" },
      store,
      directory: new MemoryDirectory(),
      peers: manager,
    });
    await service.start();

    const cvms = fleet(COUNT, APPS);
    const register = async (c: (typeof cvms)[number]) =>
      (await time(() => registerCvm(service, c)))[0];

    // 1. Everyone at once, `CONCURRENCY` requests in flight (a fleet booting).
    const latencies: number[] = [];
    const appliesBefore = manager.applies;
    const [totalMs] = await time(() =>
      inFlight(cvms, CONCURRENCY, async (c) => {
        latencies.push(await register(c));
      }),
    );
    const bulkApplies = manager.applies - appliesBefore;
    const bulkWrites = { ...writes };
    latencies.sort((a, b) => a - b);
    const ips = new Set(store.list().map((r) => r.ip));
    if (ips.size !== COUNT) throw new Error(`expected ${COUNT} distinct IPs, got ${ips.size}`);

    // 2. One at a time against the full table (re-registration of known instances).
    const single: number[] = [];
    for (const c of cvms.slice(0, 30)) single.push(await register(c));
    single.sort((a, b) => a - b);

    // 3. wg itself at COUNT peers, through `ip netns exec` (its own cost measured apart).
    const run = (file: string, argv: string[]) => exec.run(file, argv, 60_000);
    const nsExecMs = await samples(() => run("true", []));
    const syncNoopMs = await samples(() => run("wg", ["syncconf", iface, configPath]));
    const dumpMs = await samples(() => run("wg", ["show", iface, "dump"]));
    const { stdout: dump } = await run("wg", ["show", iface, "dump"]);
    const peersInWg = parseWgDump(dump).size;
    const parseMs = await samples(async () => parseWgDump(dump));
    const emptyPath = join(dir, "wireguard", "empty.conf");
    await writeFile(emptyPath, `[Interface]\nPrivateKey = ${generateWgKeyPair().privateKey}\n`, {
      mode: 0o600,
    });
    const cold: number[] = [];
    for (let k = 0; k < 3; k++) {
      await run("wg", ["setconf", iface, emptyPath]);
      cold.push((await time(() => run("wg", ["syncconf", iface, configPath])))[0]);
    }
    const syncColdMs = median(cold);

    // 3b. The store alone, same requests and concurrency: what its group commit allows.
    const storeOnly = { count: 0, operations: 0 };
    const bare = await FileRegistrationStore.open(join(dir, "bare", "state.json"), plan, {
      onWrite: (w) => {
        storeOnly.count += 1;
        storeOnly.operations += w.operations;
      },
    });
    const [storeOnlyMs] = await time(() =>
      inFlight(cvms, CONCURRENCY, async (c) => {
        await bare.register(c);
      }),
    );
    await bare.close();

    // 4. The state file.
    const stateBytes = (await stat(statePath)).size;
    const loadMs = await samples(async () => {
      const again = await FileRegistrationStore.open(statePath, plan);
      if (again.list().length !== COUNT) throw new Error("state did not load every instance");
      await again.close();
    });

    const result = {
      date: new Date().toISOString(),
      attestation: "stub (returns the ids it is given; no certificate or quote checks)",
      wireguard: "wireguard-go (userspace) in a network namespace",
      count: COUNT,
      apps: APPS,
      concurrency: CONCURRENCY,
      batchMs: 200,
      registration: {
        totalMs: round(totalMs),
        perSecond: round((COUNT / totalMs) * 1000),
        p50Ms: round(quantile(latencies, 0.5)),
        p99Ms: round(quantile(latencies, 0.99)),
        maxMs: round(latencies.at(-1) ?? Number.NaN),
        wgApplies: bulkApplies,
        stateWrites: bulkWrites.count,
        stateOperationsPerWrite: round(bulkWrites.operations / bulkWrites.count),
        stateMiBWritten: round(bulkWrites.bytes / 1024 / 1024),
      },
      storeAlone: {
        totalMs: round(storeOnlyMs),
        writes: storeOnly.count,
        operationsPerWrite: round(storeOnly.operations / storeOnly.count),
      },
      singleAtFullTable: {
        p50Ms: round(quantile(single, 0.5)),
        maxMs: round(single.at(-1) ?? Number.NaN),
      },
      wg: {
        peers: peersInWg,
        nsExecOverheadMs: round(nsExecMs),
        syncconfNoChangeMs: round(syncNoopMs),
        syncconfFromEmptyMs: round(syncColdMs),
        showDumpMs: round(dumpMs),
        parseDumpMs: round(parseMs),
      },
      state: { bytes: stateBytes, loadMs: round(loadMs) },
    };
    print(result);
    const out = args.out ?? new URL("../results/registration.json", import.meta.url).pathname;
    await mkdir(join(out, ".."), { recursive: true });
    await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nwrote ${out}`);
  } finally {
    await manager?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await net.teardown();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
