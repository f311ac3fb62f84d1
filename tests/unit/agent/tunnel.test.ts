/**
 * The agent's tunnel over a stand-in for `ip` and `wg`: what it asks of them, and the config
 * files it writes. The stand-in answers like an existing interface listening on port 51999.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { planFromResponse } from "../../../gateway-runtime/agent/plan.js";
import { AgentTunnel } from "../../../gateway-runtime/agent/tunnel.js";
import { Secret } from "../../../gateway-runtime/config/secret.js";
import { generateWgKeyPair } from "../../../gateway-runtime/keys/wireguard.js";
import { tempDir } from "../../../testkit/tmp.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import type { CommandRunner } from "../../../gateway-runtime/wg/exec.js";

const gw1 = generateWgKeyPair();
const gw2 = generateWgKeyPair();
const me = generateWgKeyPair();
const answer = (servers: { pk: string; ip: string; endpoint: string }[]) =>
  planFromResponse({ wg: { client_ip: "10.4.0.34", servers } });
const one = answer([{ pk: gw1.publicKey, ip: "10.4.0.1/16", endpoint: "192.0.2.1:51820" }]);
const two = answer([
  { pk: gw1.publicKey, ip: "10.4.0.1/16", endpoint: "192.0.2.1:51820" },
  { pk: gw2.publicKey, ip: "10.4.0.2/16", endpoint: "192.0.2.2:51820" },
]);

/** Records commands and the config file each `wg syncconf` read. */
function standIn(listenPort: number) {
  const calls: string[] = [];
  const synced: string[] = [];
  const exec: CommandRunner = {
    async run(file, args) {
      calls.push([file, ...args].join(" "));
      if (file === "wg" && args[0] === "syncconf") synced.push(readFileSync(args[2] ?? "", "utf8"));
      const stdout = file === "wg" && args.at(-1) === "listen-port" ? `${listenPort}\n` : "";
      return { stdout, stderr: "" };
    },
    spawn() {
      throw new Error("no wireguard-go here");
    },
  };
  return { exec, calls, synced };
}

function tunnel(exec: CommandRunner, listenPort?: number) {
  return new AgentTunnel({
    interface: "wgtest0",
    configPath: join(tempDir("tunnel-"), "wgtest0.conf"),
    privateKey: Secret.of(me.privateKey),
    listenPort,
    implementation: "kernel",
    wireguardGo: "wireguard-go",
    commandTimeoutMs: 1_000,
    log: silentLogger(),
    ...(exec ? { exec } : {}),
  });
}

describe("AgentTunnel", () => {
  // `wg syncconf` with no ListenPort binds a new random port (seen with wireguard-go): the
  // gateways keep sending to the old one until the CVM's next keepalive, seconds later.
  it("keeps the interface's port when it changes peers in place or forces a handshake", async () => {
    const { exec, synced } = standIn(51999);
    const t = tunnel(exec);
    await t.apply(one);
    await t.update(two);
    await t.rehandshake();
    expect(synced).toHaveLength(3);
    for (const text of synced.slice(1)) expect(text).toContain("\nListenPort = 51999\n");
  });

  it("uses the configured port when there is one", async () => {
    const { exec, synced, calls } = standIn(51999);
    const t = tunnel(exec, 40000);
    await t.apply(one);
    await t.update(two);
    for (const text of synced) expect(text).toContain("\nListenPort = 40000\n");
    expect(calls.some((c) => c.endsWith("listen-port"))).toBe(false);
  });

  it("updates peers without dropping the sessions of the ones that stay", async () => {
    const { exec, calls } = standIn(51999);
    const t = tunnel(exec);
    await t.apply(one);
    calls.length = 0;
    await t.update(two);
    expect(calls.filter((c) => c.includes(" remove"))).toEqual([]);
    expect(t.plan).toEqual(two);
  });
});
