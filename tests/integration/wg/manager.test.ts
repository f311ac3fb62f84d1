/**
 * The WireGuard manager against real wireguard-go and wg, in network namespaces made by the
 * harness: a "gateway" namespace runs the manager (every command through `ip netns exec`), two
 * "CVM" namespaces each run a wireguard-go peer that reaches the gateway over a veth link.
 * Traffic stays inside these namespaces. Missing tools fail the suite; nothing is skipped.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Secret } from "../../../gateway-runtime/config/secret.js";
import { createLogger, silentLogger } from "../../../gateway-runtime/log/index.js";
import { prefixedRunner } from "../../../gateway-runtime/wg/exec.js";
import { generateWgKeyPair } from "../../../gateway-runtime/keys/wireguard.js";
import { WireGuardManager } from "../../../gateway-runtime/wg/manager.js";
import { parseWgDump, type WgPeer } from "../../../gateway-runtime/wg/render.js";
import {
  cleanupStale,
  listNamespaces,
  NetnsHarness,
  processesMatching,
  run,
} from "../../../testkit/netns.js";
import { until } from "../../../testkit/poll.js";

const TOOLS: [string, string[], string][] = [
  ["wireguard-go", ["--version"], "wireguard-go"],
  ["wg", ["--version"], "wireguard-tools"],
  ["ip", ["-V"], "iproute2"],
  ["setpriv", ["--version"], "util-linux"],
];

async function requireTools(): Promise<void> {
  for (const [tool, args, pkg] of TOOLS) {
    await run(tool, args).catch((err: Error) => {
      throw new Error(
        `the WireGuard integration test needs ${tool} (apt-get install ${pkg}): ${err.message}`,
      );
    });
  }
}

const PORT = 51820;
const ECHO_PORT = 7777;
const net = new NetnsHarness();
const gwKeys = generateWgKeyPair();
const gwIf = net.linkName("g");
const cvms = [
  {
    tag: "a",
    ip: "10.4.0.2",
    gwSide: "192.0.2.1",
    cvmSide: "192.0.2.2",
    keys: generateWgKeyPair(),
  },
  {
    tag: "b",
    ip: "10.4.0.3",
    gwSide: "192.0.2.5",
    cvmSide: "192.0.2.6",
    keys: generateWgKeyPair(),
  },
].map((c) => ({
  ...c,
  ns: "",
  iface: net.linkName(c.tag),
  peer: { publicKey: c.keys.publicKey, ip: c.ip },
}));
const [cvmA, cvmB] = cvms as [(typeof cvms)[0], (typeof cvms)[0]];

let dir = "";
let gw = "";
let manager: WireGuardManager;
const logs: string[] = [];

/** `until` of testkit/poll.ts, polling every 25 ms. */
const waitUntil = (what: string, check: () => Promise<boolean>, timeoutMs = 5_000) =>
  until(what, check, timeoutMs, { everyMs: 25 });

async function gatewayPeers(): Promise<Map<string, { allowedIps: readonly string[] }>> {
  return parseWgDump((await net.exec(gw, "wg", ["show", gwIf, "dump"])).stdout);
}

/** A TCP echo round trip to the gateway's tunnel address, from inside `ns`; bounded. */
async function probe(ns: string, timeoutMs: number): Promise<boolean> {
  const script = `const s = require("node:net").connect(${ECHO_PORT}, "10.4.0.1");
    s.setTimeout(${timeoutMs}, () => process.exit(2)); s.on("error", () => process.exit(1));
    s.on("connect", () => s.write("ping")); s.on("data", (d) => process.exit(d.toString() === "ping" ? 0 : 3));`;
  return net
    .exec(ns, process.execPath, ["-e", script], timeoutMs + 2_000)
    .then(() => true)
    .catch(() => false);
}

describe("the tools this suite runs", () => {
  it("are installed: wireguard-go, wg, ip, setpriv (CI installs them; nothing is skipped)", async () => {
    await requireTools();
  });
});

describe("WireGuardManager with wireguard-go in network namespaces", () => {
  beforeAll(async () => {
    await requireTools();
    await cleanupStale();
    dir = await mkdtemp(join(tmpdir(), "gwt-wg-"));
    gw = await net.add("gw");
    for (const cvm of cvms) {
      cvm.ns = await net.add(`cvm-${cvm.tag}`);
      await net.veth(
        { ns: gw, dev: `to-${cvm.tag}`, address: `${cvm.gwSide}/30` },
        { ns: cvm.ns, dev: "to-gw", address: `${cvm.cvmSide}/30` },
      );
      net.spawn(cvm.ns, "wireguard-go", ["-f", cvm.iface]);
      await waitUntil(`wireguard-go in ${cvm.ns}`, async () => {
        await net.exec(cvm.ns, "wg", ["show", cvm.iface, "listen-port"]);
        return true;
      });
      const keyFile = join(dir, `${cvm.tag}.key`);
      await writeFile(keyFile, cvm.keys.privateKey, { mode: 0o600 });
      const peer = [
        gwKeys.publicKey,
        "endpoint",
        `${cvm.gwSide}:${PORT}`,
        "allowed-ips",
        "10.4.0.1/32",
      ];
      await net.exec(cvm.ns, "wg", ["set", cvm.iface, "private-key", keyFile, "peer", ...peer]);
      await net.exec(cvm.ns, "ip", ["address", "add", `${cvm.ip}/16`, "dev", cvm.iface]);
      await net.exec(cvm.ns, "ip", ["link", "set", cvm.iface, "up"]);
    }
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString("utf8"));
        done();
      },
    });
    manager = await WireGuardManager.create({
      interface: gwIf,
      configPath: join(dir, "wireguard", "gw.conf"),
      privateKey: Secret.of(gwKeys.privateKey),
      listenPort: PORT,
      address: "10.4.0.1/16",
      implementation: "userspace",
      log: createLogger("trace", sink),
      exec: prefixedRunner(["ip", "netns", "exec", gw]),
    });
  }, 30_000);

  afterAll(async () => {
    try {
      await manager?.close();
    } finally {
      await net.teardown();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("creates the interface, and a second ensureInterface changes nothing", async () => {
    await manager.ensureInterface();
    const pid = manager.userspacePid;
    expect(pid).toBeGreaterThan(0);
    await manager.ensureInterface();
    expect(manager.userspacePid).toBe(pid);
    const [link] = JSON.parse(
      (await net.exec(gw, "ip", ["-j", "address", "show", "dev", gwIf])).stdout,
    );
    expect(link.flags).toContain("UP");
    expect(
      link.addr_info
        .filter((a: { family: string }) => a.family === "inet") // the tun also gets an fe80::
        .map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`),
    ).toEqual(["10.4.0.1/16"]);
    expect((await net.exec(gw, "wg", ["show", gwIf, "public-key"])).stdout.trim()).toBe(
      gwKeys.publicKey,
    );
    expect((await net.exec(gw, "wg", ["show", gwIf, "listen-port"])).stdout.trim()).toBe(
      String(PORT),
    );
  });

  it("applies peers through a 0600 file that holds the key, which no log line does", async () => {
    await manager.setPeers([cvmA.peer, cvmB.peer]);
    const peers = await gatewayPeers();
    expect([...peers.keys()].sort()).toEqual([cvmA.peer.publicKey, cvmB.peer.publicKey].sort());
    expect(peers.get(cvmA.peer.publicKey)?.allowedIps).toEqual(["10.4.0.2/32"]);
    expect(peers.get(cvmB.peer.publicKey)?.allowedIps).toEqual(["10.4.0.3/32"]);
    const configPath = join(dir, "wireguard", "gw.conf");
    expect((await stat(configPath)).mode & 0o777).toBe(0o600);
    expect(await readFile(configPath, "utf8")).toContain(`PrivateKey = ${gwKeys.privateKey}`);
    expect(logs.join("")).toContain("wireguard-go started");
    expect(logs.join("")).toContain("WireGuard peers applied");
    expect(logs.join("")).not.toContain(gwKeys.privateKey);
  });

  it("coalesces bursts: 100 calls at once apply once, 100 calls over ~0.5 s a few times", async () => {
    const sets: WgPeer[][] = [[cvmA.peer], [cvmB.peer], [cvmA.peer, cvmB.peer]];
    let before = manager.applies;
    await Promise.all(Array.from({ length: 100 }, (_, i) => manager.setPeers(sets[i % 3] ?? [])));
    expect(manager.applies - before).toBe(1);
    expect([...(await gatewayPeers()).keys()]).toEqual([cvmA.peer.publicKey]); // call 99: set 0

    before = manager.applies;
    const started = performance.now();
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      const appliesAtCall = manager.applies;
      const peers = i === 99 ? [cvmA.peer, cvmB.peer] : (sets[i % 2] ?? []);
      // Each promise settles only after an apply that started after the call.
      calls.push(
        manager.setPeers(peers).then(() => expect(manager.applies).toBeGreaterThan(appliesAtCall)),
      );
      await sleep(5);
    }
    await Promise.all(calls);
    expect(manager.applies - before).toBeGreaterThanOrEqual(2);
    // One apply per 200 ms batch window the calls spanned (about 0.5 s idle, longer on a busy
    // machine), plus the one in flight; not one per call.
    const windows = Math.ceil((performance.now() - started) / 200);
    expect(manager.applies - before).toBeLessThanOrEqual(Math.min(windows + 2, 20));
    expect((await gatewayPeers()).size).toBe(2);
  });

  it("sees the handshake of the CVM that sent traffic, and none of the other", async () => {
    const echo = net.spawn(gw, process.execPath, [
      "-e",
      `require("node:net").createServer((s) => s.pipe(s)).listen(${ECHO_PORT}, "10.4.0.1", () => console.log("listening"));`,
    ]);
    await waitUntil("the echo server", async () => echo.output().includes("listening"));
    const sent = Date.now();
    expect(await probe(cvmA.ns, 5_000)).toBe(true);
    const handshakes = await manager.handshakes();
    expect(handshakes.get(cvmA.peer.publicKey)).toBeGreaterThanOrEqual(sent - 1_000);
    expect(handshakes.get(cvmA.peer.publicKey)).toBeLessThanOrEqual(Date.now());
    expect(handshakes.get(cvmB.peer.publicKey)).toBe(0);

    const updates: Map<string, number>[] = [];
    const poller = manager.startHealthPolling(50, (m) => updates.push(m));
    await waitUntil("two health updates", async () => updates.length >= 2);
    poller.stop();
    expect(updates[1]).toEqual(handshakes);
  });

  it("leaves a roamed peer's new endpoint alone when it applies peers again", async () => {
    const endpointOfA = async () =>
      parseWgDump((await net.exec(gw, "wg", ["show", gwIf, "dump"])).stdout).get(
        cvmA.peer.publicKey,
      )?.endpoint;
    await manager.handshakes(); // remembers A's endpoint
    const before = await endpointOfA();
    expect(before).toMatch(/^192\.0\.2\.2:\d+$/);
    // A's UDP port changes (a NAT rebinding, a restarted wireguard-go); its next packet moves it.
    const port = Number(before?.split(":")[1]) === 51999 ? 51998 : 51999;
    await net.exec(cvmA.ns, "wg", ["set", cvmA.iface, "listen-port", String(port)]);
    expect(await probe(cvmA.ns, 5_000)).toBe(true);
    expect(await endpointOfA()).toBe(`192.0.2.2:${port}`);
    // An apply before the next poll: the remembered endpoint is the old one.
    await manager.setPeers([cvmA.peer, cvmB.peer]);
    expect(await endpointOfA()).toBe(`192.0.2.2:${port}`);
    await manager.handshakes(); // the poll records the new one for the next start
    await manager.setPeers([cvmA.peer, cvmB.peer]);
    expect(await readFile(join(dir, "wireguard", "gw.conf"), "utf8")).toContain(
      `Endpoint = 192.0.2.2:${port}`,
    );
  });

  it("removes a peer: gone from wg show, cut off, and the kept peer keeps its session", async () => {
    const before = (await manager.handshakes()).get(cvmA.peer.publicKey) ?? 0;
    await manager.setPeers([cvmA.peer]);
    expect([...(await gatewayPeers()).keys()]).toEqual([cvmA.peer.publicKey]);
    expect((await manager.handshakes()).get(cvmA.peer.publicKey)).toBe(before);
    expect(await probe(cvmB.ns, 1_000)).toBe(false);
    expect(await probe(cvmA.ns, 5_000)).toBe(true);
  });

  it("a gateway restart keeps wireguard-go, the interface and its peers; the next one adopts them", async () => {
    const pid = manager.userspacePid ?? -1;
    expect(pid).toBeGreaterThan(0);
    const handshake = (await manager.handshakes()).get(cvmA.peer.publicKey) ?? 0;
    await manager.close(); // what a stopping gateway does (registration/start.ts)
    await expect(manager.setPeers([])).rejects.toMatchObject({ code: "E_WG_CLOSED" });
    expect(processesMatching("wireguard-go")).toContain(pid);
    expect([...(await gatewayPeers()).keys()]).toEqual([cvmA.peer.publicKey]);
    expect(await probe(cvmA.ns, 5_000)).toBe(true); // the tunnel works with no gateway running

    // The next generation: the registered peers, the same interface, no new wireguard-go.
    const next = await WireGuardManager.create({
      interface: gwIf,
      configPath: join(dir, "wireguard", "gw.conf"),
      privateKey: Secret.of(gwKeys.privateKey),
      listenPort: PORT,
      address: "10.4.0.1/16",
      implementation: "userspace",
      peers: [cvmA.peer],
      log: silentLogger(),
      exec: prefixedRunner(["ip", "netns", "exec", gw]),
    });
    await next.ensureInterface();
    expect(next.userspacePid).toBeUndefined(); // adopted, not started
    expect(processesMatching("wireguard-go")).toContain(pid);
    expect(handshake).toBeGreaterThan(0);
    // A new wireguard-go would know no handshake at all: the session is the one from before.
    expect((await next.handshakes()).get(cvmA.peer.publicKey)).toBeGreaterThanOrEqual(handshake);
    expect(await probe(cvmA.ns, 5_000)).toBe(true);
    await next.close();

    // Deleting the interface is what ends wireguard-go for good.
    await net.exec(gw, "ip", ["link", "del", "dev", gwIf]);
    await waitUntil(
      "wireguard-go to exit",
      async () => !processesMatching("wireguard-go").includes(pid),
    );

    await net.teardown();
    expect(await listNamespaces(net.prefix)).toEqual([]);
    for (const name of [gwIf, cvmA.iface, cvmB.iface]) {
      expect(processesMatching(name)).toEqual([]);
      expect(existsSync(`/var/run/wireguard/${name}.sock`)).toBe(false);
    }
  });
});
