/**
 * The manager's own logic with a scripted command runner: what real `wg` cannot be made to do
 * on demand (fail with a given stderr, hang) and the exact command sequence. The behaviour
 * against real wireguard-go is in tests/integration/wg/manager.test.ts.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Secret } from "../../../gateway-runtime/config/secret.js";
import { createLogger, silentLogger } from "../../../gateway-runtime/log/index.js";
import { CommandError, type CommandRunner } from "../../../gateway-runtime/wg/exec.js";
import { generateWgKeyPair } from "../../../gateway-runtime/keys/wireguard.js";
import { WireGuardManager } from "../../../gateway-runtime/wg/manager.js";
import { until } from "../../../testkit/poll.js";

type Handler = (cmd: string) => string | CommandError;

class ScriptedRunner implements CommandRunner {
  readonly calls: string[] = [];
  readonly spawned: ChildProcess[] = [];
  constructor(public handler: Handler) {}
  async run(file: string, args: readonly string[]) {
    const cmd = [file, ...args].join(" ");
    this.calls.push(cmd);
    const out = this.handler(cmd);
    if (out instanceof CommandError) throw out;
    return { stdout: out, stderr: "" };
  }
  spawn(file: string, args: readonly string[]): ChildProcess {
    this.calls.push(`spawn ${[file, ...args].join(" ")}`);
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"]);
    this.spawned.push(child);
    return child;
  }
}

const fail = (stderr: string, code = 1) => new CommandError("cmd", code, false, stderr);
const noLink: Handler = (cmd) =>
  cmd.startsWith("ip link show") ? fail('Device "wg-t" does not exist.') : "";

const keys = generateWgKeyPair();
const peerA = { publicKey: generateWgKeyPair().publicKey, ip: "10.4.0.2" };
const peerB = { publicKey: generateWgKeyPair().publicKey, ip: "10.4.0.3" };
let dir = "";
let logs: string[] = [];
const managers: WireGuardManager[] = [];

async function manager(runner: CommandRunner, extra: { implementation?: "auto" | "kernel" } = {}) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString("utf8"));
      done();
    },
  });
  const m = await WireGuardManager.create({
    interface: "wg-t",
    configPath: join(dir, "wg", "wg-t.conf"),
    privateKey: Secret.of(keys.privateKey),
    listenPort: 51820,
    address: "10.4.0.1/16",
    batchMs: 20,
    log: createLogger("trace", sink),
    exec: runner,
    ...extra,
  });
  managers.push(m);
  return m;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "gwt-wg-unit-"));
  logs = [];
});

afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
  await rm(dir, { recursive: true, force: true });
});

describe("WireGuardManager (scripted runner)", () => {
  it("creates a kernel interface in wg-quick's order: add, syncconf, address, up", async () => {
    const runner = new ScriptedRunner(noLink);
    await (await manager(runner)).ensureInterface();
    const conf = join(dir, "wg", "wg-t.conf");
    expect(runner.calls).toEqual([
      "ip link show dev wg-t",
      "ip link add dev wg-t type wireguard",
      `wg syncconf wg-t ${conf}`,
      "ip address replace 10.4.0.1/16 dev wg-t",
      "ip link set dev wg-t up",
    ]);
    expect(runner.calls.join("\n")).not.toContain(keys.privateKey);
  });

  it("remembers where peers were: seen endpoints, and a previous run's file, go into the config", async () => {
    const conf = join(dir, "wg", "wg-t.conf");
    const dump = (endpoint: string) =>
      `priv\tpub\t51820\toff\n${peerA.publicKey}\t(none)\t${endpoint}\t10.4.0.2/32\t1700000000\t1\t2\toff\n`;
    const runner = new ScriptedRunner((cmd) =>
      cmd.startsWith("wg show") ? dump("192.0.2.9:40009") : noLink(cmd),
    );
    const first = await manager(runner);
    await first.ensureInterface();
    await first.setPeers([peerA, peerB]);
    expect(await readFile(conf, "utf8")).not.toContain("Endpoint");
    await first.peerStatus();
    // a newly seen endpoint is written to the file on its own
    await until(
      "the seen endpoint in the file",
      async () => (await readFile(conf, "utf8")).includes("Endpoint = 192.0.2.9:40009"),
      5_000,
    );
    const written = await readFile(conf, "utf8");
    expect(written).toContain(
      `PublicKey = ${peerA.publicKey}\nAllowedIPs = 10.4.0.2/32\nEndpoint = 192.0.2.9:40009\n`,
    );
    expect(written).not.toMatch(
      new RegExp(`${peerB.publicKey.replace(/[+/]/g, ".")}\\nAllowedIPs = 10.4.0.3/32\\nEndpoint`),
    );
    await first.close();
    // A restarted gateway (a new manager on the same file) starts with those endpoints.
    const second = await manager(new ScriptedRunner(noLink), {});
    await second.setPeers([peerA]);
    expect(await readFile(conf, "utf8")).toContain("Endpoint = 192.0.2.9:40009");
  });

  it("gives a new interface the remembered endpoints, and leaves a live one's to roaming", async () => {
    const conf = join(dir, "wg", "wg-t.conf");
    await mkdir(join(dir, "wg"), { recursive: true });
    await writeFile(conf, `[Peer]\nPublicKey = ${peerA.publicKey}\nEndpoint = 192.0.2.9:40009\n`);
    let linkUp = false;
    const synced: string[] = []; // what each wg syncconf read
    const runner = new ScriptedRunner((cmd) => {
      if (cmd.startsWith("ip link add")) linkUp = true;
      if (cmd.startsWith("ip link show")) return linkUp ? "" : noLink(cmd);
      if (cmd.startsWith("wg syncconf")) synced.push(readFileSync(cmd.split(" ")[3] ?? "", "utf8"));
      return "";
    });
    const m = await manager(runner);
    await m.setPeers([peerA, peerB]); // no link yet: wg would fail; the script lets it pass
    await m.ensureInterface(); // creates the link: its first sync carries the endpoint
    await m.setPeers([peerA]); // live: the sync names no endpoint, the file keeps it
    expect(synced).toHaveLength(3);
    expect(synced[1]).toContain("Endpoint = 192.0.2.9:40009");
    expect(synced[2]).toContain(`PublicKey = ${peerA.publicKey}`);
    expect(synced[2]).not.toContain("Endpoint");
    expect(await readFile(conf, "utf8")).toContain("Endpoint = 192.0.2.9:40009");
    expect(await readdir(join(dir, "wg"))).toEqual(["wg-t.conf"]); // the sync copy is gone
  });

  it("falls back to wireguard-go, and close leaves it running for the next generation", async () => {
    const runner = new ScriptedRunner((cmd) =>
      cmd.startsWith("ip link add") ? fail("Error: Unknown device type.", 2) : noLink(cmd),
    );
    const m = await manager(runner);
    await m.ensureInterface();
    expect(runner.calls).toContain("spawn wireguard-go -f wg-t");
    const child = runner.spawned[0];
    expect(m.userspacePid).toBe(child?.pid);
    await m.close();
    expect(m.userspacePid).toBeUndefined();
    expect(child?.exitCode).toBeNull();
    expect(child?.signalCode).toBeNull();
    child?.kill("SIGKILL");
  });

  it("with implementation kernel, fails with E_WG_INTERFACE instead of falling back", async () => {
    const runner = new ScriptedRunner((cmd) =>
      cmd.startsWith("ip link add") ? fail("Error: Unknown device type.", 2) : noLink(cmd),
    );
    const m = await manager(runner, { implementation: "kernel" });
    await expect(m.ensureInterface()).rejects.toMatchObject({ code: "E_WG_INTERFACE" });
    expect(runner.spawned).toEqual([]);
  });

  it("rejects every caller of a failed apply with E_WG_APPLY and wg's stderr minus the key", async () => {
    const stderr = `Line unrecognized: \`PrivateKey=${keys.privateKey}'\nConfiguration parsing error`;
    const runner = new ScriptedRunner((cmd) => (cmd.startsWith("wg syncconf") ? fail(stderr) : ""));
    const m = await manager(runner);
    const results = await Promise.allSettled([m.setPeers([peerA]), m.setPeers([peerA, peerB])]);
    expect(m.applies).toBe(1);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const err = (r as PromiseRejectedResult).reason as Error & { code: string };
      expect(err.code).toBe("E_WG_APPLY");
      expect(err.message).toContain("Line unrecognized: `PrivateKey=[redacted]'");
      expect(err.message).not.toContain(keys.privateKey);
      expect(err.cause).toBeUndefined();
    }
    runner.handler = () => "";
    await m.setPeers([peerB]);
    expect(m.applies).toBe(2);
  });

  it("rejects bad peers at once, leaving the pending batch alone", async () => {
    const m = await manager(new ScriptedRunner(() => ""));
    const good = m.setPeers([peerA]);
    await expect(m.setPeers([{ publicKey: "nope", ip: "10.4.0.9" }])).rejects.toMatchObject({
      code: "E_WG_PEER_INVALID",
    });
    await good;
    expect(m.applies).toBe(1);
  });

  it("fails calls still waiting with E_WG_CLOSED on close, and runs none of them", async () => {
    const runner = new ScriptedRunner(() => "");
    const m = await manager(runner);
    const pending = m.setPeers([peerA]);
    await m.close();
    await expect(pending).rejects.toMatchObject({ code: "E_WG_CLOSED" });
    await expect(m.ensureInterface()).rejects.toMatchObject({ code: "E_WG_CLOSED" });
    expect(m.applies).toBe(0);
    expect(runner.calls).toEqual([]);
  });

  it("logs health poll failures and keeps polling; a throwing callback does not stop it", async () => {
    let call = 0;
    const dump = `(none)\t(none)\t51820\toff\n${peerA.publicKey}\t(none)\t(none)\t10.4.0.2/32\t7\t0\t0\toff\n`;
    const runner = new ScriptedRunner(() =>
      ++call === 1 ? fail("Unable to access interface") : dump,
    );
    const m = await manager(runner);
    const seen: number[] = [];
    const poller = m.startHealthPolling(10, (h) => {
      seen.push(h.get(peerA.publicKey) ?? -1);
      throw new Error("callback bug");
    });
    for (let i = 0; i < 100 && seen.length < 2; i++) await sleep(10);
    poller.stop();
    expect(seen.slice(0, 2)).toEqual([7000, 7000]);
    const text = logs.join("");
    expect(text).toContain("WireGuard health poll failed");
    expect(text).toContain("Unable to access interface");
    expect(text).toContain("callback bug");
  });

  it.each([
    ["a bad interface name", { interface: "-rf" }],
    ["a too long interface name", { interface: "a".repeat(16) }],
    ["a bad address", { address: "10.4.0.1" }],
    ["a bad port", { listenPort: 0 }],
    ["a bad key", { privateKey: Secret.of(`${keys.privateKey.slice(0, 40)}!!!=`) }],
  ])("create rejects %s with E_WG_CONFIG_INVALID", async (_name, override) => {
    const create = WireGuardManager.create({
      interface: "wg-t",
      configPath: join(dir, "wg-t.conf"),
      privateKey: Secret.of(keys.privateKey),
      listenPort: 51820,
      address: "10.4.0.1/16",
      log: silentLogger(),
      ...override,
    });
    await expect(create).rejects.toMatchObject({ code: "E_WG_CONFIG_INVALID" });
    await expect(create).rejects.not.toThrow(keys.privateKey.slice(0, 40));
  });
});
