/**
 * The CVM's WireGuard interface: configured from a `TunnelPlan` (key and peers with
 * `wg syncconf` from a 0600 file, address and routes with `ip`), watched through
 * `wg show <if> dump`, and taken down on stop (wireguard-go stopped, a kernel link deleted:
 * nobody keeps a tunnel healthy once the agent is gone).
 */
import { dirname } from "node:path";
import type { Secret } from "../config/secret.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import { ensureDir, writeFileAtomic } from "../files/atomic.js";
import { CommandError, type CommandRunner, execRunner } from "../wg/exec.js";
import { parseWgDump } from "../wg/render.js";
import type { WireguardGoProcess } from "../wg/userspace.js";
import { createWgLink, type LinkOptions, linkExists, type WgImplementation } from "./link.js";
import { renderTunnelConfig, type TunnelPlan } from "./plan.js";

export interface TunnelOptions {
  readonly interface: string;
  /** Where the rendered config goes (0600); it holds the private key. */
  readonly configPath: string;
  readonly privateKey: Secret;
  /** Our UDP port; undefined lets WireGuard pick one. */
  readonly listenPort?: number | undefined;
  readonly implementation: WgImplementation;
  readonly wireguardGo: string;
  readonly commandTimeoutMs: number;
  readonly log: Logger;
  /** @default execRunner() */
  readonly exec?: CommandRunner;
}

export interface TunnelStatus {
  readonly linkUp: boolean;
  /** Latest handshake over the plan's peers, ms since the epoch; 0 = none. */
  readonly latestHandshakeMs: number;
  /** Each of the plan's peers' latest handshake by public key (0 = none); absent: link down. */
  readonly peerHandshakesMs?: ReadonlyMap<string, number>;
}

export class AgentTunnel {
  readonly #o: TunnelOptions;
  readonly #link: LinkOptions;
  #plan: TunnelPlan | undefined;
  /** The address currently on the interface, as set by us. */
  #address: string | undefined;
  #userspace: WireguardGoProcess | undefined;

  constructor(options: TunnelOptions) {
    this.#o = options;
    this.#link = {
      exec: options.exec ?? execRunner(),
      iface: options.interface,
      implementation: options.implementation,
      wireguardGo: options.wireguardGo,
      commandTimeoutMs: options.commandTimeoutMs,
      log: options.log,
    };
  }

  /** The plan applied last, if any. */
  get plan(): TunnelPlan | undefined {
    return this.#plan;
  }

  /** The pid of the wireguard-go this tunnel runs, if it runs one. */
  get userspacePid(): number | undefined {
    return this.#userspace?.running ? this.#userspace.pid : undefined;
  }

  /**
   * Makes the interface match `plan`, creating it when missing. Gateway peers that existed
   * already are removed and re-added, which drops their sessions: the next packet (the
   * keepalive sent on configuration) starts a fresh handshake.
   */
  async apply(plan: TunnelPlan): Promise<void> {
    const iface = this.#o.interface;
    const exists = this.#userspace?.running !== false && (await this.#step(linkExists(this.#link)));
    if (!exists) {
      await this.#userspace?.stop();
      this.#userspace = await this.#step(createWgLink(this.#link));
      this.#address = undefined;
    } else {
      await this.#dropSessions(plan);
    }
    await this.#writeConfig(plan, exists);
    await this.#run("wg", ["syncconf", iface, this.#o.configPath]);
    if (this.#address !== plan.address) {
      await this.#run("ip", ["-4", "address", "flush", "dev", iface]);
      await this.#run("ip", ["address", "add", plan.address, "dev", iface]);
      this.#address = plan.address;
    }
    await this.#run("ip", ["link", "set", "dev", iface, "up"]);
    for (const route of plan.routes) {
      await this.#run("ip", ["route", "replace", route, "dev", iface]);
    }
    this.#plan = plan;
  }

  /**
   * Changes the gateway peers of a configured tunnel to `plan`'s, keeping its address: `wg
   * syncconf` adds and removes peers and leaves the sessions of the ones that stay, so the
   * connections through them see nothing. Routes of peers that left are removed.
   */
  async update(plan: TunnelPlan): Promise<void> {
    const previous = this.#plan;
    if (!previous || previous.address !== plan.address) {
      await this.apply(plan);
      return;
    }
    await this.#writeConfig(plan, true);
    await this.#run("wg", ["syncconf", this.#o.interface, this.#o.configPath]);
    for (const route of plan.routes) {
      await this.#run("ip", ["route", "replace", route, "dev", this.#o.interface]);
    }
    for (const route of previous.routes.filter((r) => !plan.routes.includes(r))) {
      await this.#run("ip", ["route", "del", route, "dev", this.#o.interface]);
    }
    this.#plan = plan;
  }

  /** Drops the gateway peers' sessions and re-adds the peers, forcing new handshakes. */
  async rehandshake(): Promise<void> {
    const plan = this.#plan;
    if (!plan) return;
    await this.#dropSessions(plan);
    await this.#writeConfig(plan, true);
    await this.#run("wg", ["syncconf", this.#o.interface, this.#o.configPath]);
  }

  /** Whether the interface is there, and its latest handshake with a gateway peer. */
  async status(): Promise<TunnelStatus> {
    if (this.#userspace && !this.#userspace.running) return { linkUp: false, latestHandshakeMs: 0 };
    let dump: string;
    try {
      ({ stdout: dump } = await this.#link.exec.run(
        "wg",
        ["show", this.#o.interface, "dump"],
        this.#o.commandTimeoutMs,
      ));
    } catch (err) {
      if (err instanceof CommandError && !err.timedOut)
        return { linkUp: false, latestHandshakeMs: 0 };
      throw this.#wrap(err);
    }
    const peers = parseWgDump(dump);
    let latest = 0;
    const byPeer = new Map<string, number>();
    for (const peer of this.#plan?.peers ?? []) {
      const ms = peers.get(peer.publicKey)?.lastHandshakeMs ?? 0;
      byPeer.set(peer.publicKey, ms);
      latest = Math.max(latest, ms);
    }
    return { linkUp: true, latestHandshakeMs: latest, peerHandshakesMs: byPeer };
  }

  /** Takes the interface down: stops our wireguard-go, or deletes the kernel link. */
  async close(): Promise<void> {
    if (this.#userspace) {
      await this.#userspace.stop();
      this.#userspace = undefined;
      return;
    }
    if (this.#plan === undefined) return;
    await this.#run("ip", ["link", "del", "dev", this.#o.interface]).catch((err: unknown) =>
      this.#o.log.warn({ err: (err as Error).message }, "could not delete the WireGuard link"),
    );
  }

  async #dropSessions(plan: TunnelPlan): Promise<void> {
    for (const peer of plan.peers) {
      await this.#run("wg", ["set", this.#o.interface, "peer", peer.publicKey, "remove"]);
    }
  }

  /**
   * `wg syncconf` of a config without ListenPort binds the interface to a new random port (so
   * does wireguard-go): the gateways would keep sending to the old one until this CVM's next
   * keepalive, seconds later. So a config for an existing interface names the port it has.
   */
  async #listenPort(existing: boolean): Promise<number | undefined> {
    if (this.#o.listenPort !== undefined || !existing) return this.#o.listenPort;
    const { stdout } = await this.#run("wg", ["show", this.#o.interface, "listen-port"]);
    const port = Number.parseInt(stdout.trim(), 10);
    return Number.isInteger(port) && port > 0 && port <= 65535 ? port : undefined;
  }

  async #writeConfig(plan: TunnelPlan, existing: boolean): Promise<void> {
    const port = await this.#listenPort(existing);
    const text = renderTunnelConfig(plan, this.#o.privateKey.reveal(), port);
    try {
      await ensureDir(dirname(this.#o.configPath));
      await writeFileAtomic(this.#o.configPath, text, 0o600);
    } catch (err) {
      throw this.#wrap(err);
    }
  }

  #run(file: string, args: readonly string[]) {
    return this.#step(this.#link.exec.run(file, args, this.#o.commandTimeoutMs));
  }

  async #step<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      throw this.#wrap(err);
    }
  }

  /** E_AGENT_TUNNEL with the command's stderr, the private key cut out. */
  #wrap(err: unknown): GatewayError {
    if (err instanceof GatewayError && err.code === "E_AGENT_TUNNEL") return err;
    const key = this.#o.privateKey.reveal();
    const scrub = (text: string) => text.split(key).join("[redacted]").trim();
    const detail =
      err instanceof CommandError
        ? `${err.message}${err.stderr ? `: ${scrub(err.stderr)}` : ""}`
        : scrub(err instanceof Error ? err.message : String(err));
    return new GatewayError(
      "E_AGENT_TUNNEL",
      `WireGuard interface ${this.#o.interface}: ${detail}`,
    );
  }
}
