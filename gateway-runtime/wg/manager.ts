import { createSocket } from "node:dgram";
import { readFile, unlink, writeFile } from "node:fs/promises";
/**
 * The gateway's WireGuard interface: creates it (kernel module, else wireguard-go), applies the
 * peer set with `wg syncconf` (which keeps the sessions of unchanged peers), reads handshakes.
 * All changes run one at a time; bursts of peer updates are coalesced into few applies.
 */
import { dirname } from "node:path";
import type { Secret } from "../config/secret.js";
import { parseCidr } from "../config/net.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import { ensureDir, removeStrayTemps, writeFileAtomic } from "../files/atomic.js";
import { CommandError, type CommandRunner, execRunner } from "./exec.js";
import { decodeWgKey } from "../keys/wireguard.js";
import {
  checkWgPeers,
  parseWgDump,
  isWgEndpoint,
  parseWgConfigEndpoints,
  renderWgConfig,
  type WgPeer,
  type WgPeerStatus,
} from "./render.js";
import { WireguardGoProcess } from "./userspace.js";
import { SerialCoalescer } from "./coalesce.js";

export type WgErrorCode =
  | "E_WG_APPLY"
  | "E_WG_CLOSED"
  | "E_WG_CONFIG_INVALID"
  | "E_WG_INTERFACE"
  | "E_WG_SHOW";

export interface WireGuardManagerOptions {
  /** Interface name (`core.wg.interface`), at most 15 characters. */
  readonly interface: string;
  /** Where the rendered config is written (0600), e.g. `core.wg.config_path`. */
  readonly configPath: string;
  readonly privateKey: Secret;
  readonly listenPort: number;
  /** The gateway's own address with the tunnel's prefix (`core.wg.ip`), e.g. `10.4.0.1/16`. */
  readonly address: string;
  /**
   * Peers applied by `ensureInterface` until the first `setPeers`: pass the registered ones, so
   * a restart neither drops their sessions nor resets their handshakes. @default []
   */
  readonly peers?: readonly WgPeer[];
  /** Window in which `setPeers` calls are coalesced into one apply. @default 200 */
  readonly batchMs?: number;
  /**
   * "kernel" needs the kernel module, "userspace" always runs wireguard-go, "auto" tries the
   * kernel first. @default "auto"
   */
  readonly implementation?: "auto" | "kernel" | "userspace";
  /** @default "wireguard-go" */
  readonly wireguardGo?: string;
  /** Bound on every `ip` / `wg` command. @default 10_000 */
  readonly commandTimeoutMs?: number;
  readonly log: Logger;
  /** Runs the commands; tests wrap them in a network namespace. @default execRunner() */
  readonly exec?: CommandRunner;
}

/** What Linux and wg accept, minus a leading `-` or `.` (an option, `.`/`..`). */
const IFNAME = /^[A-Za-z0-9_=+][A-Za-z0-9_=+.-]{0,14}$/;

export class WireGuardManager {
  readonly #opts: Required<Omit<WireGuardManagerOptions, "peers" | "exec">>;
  readonly #exec: CommandRunner;
  readonly #updates: SerialCoalescer<readonly WgPeer[]>;
  #desired: readonly WgPeer[];
  #applies = 0;
  #userspace: WireguardGoProcess | undefined;
  readonly #pollers = new Set<{ stop(): void }>();
  #closed: Promise<void> | undefined;
  /** Last endpoint seen per peer (from `wg show dump`, or an earlier run's config file). */
  readonly #endpoints: Map<string, string>;
  /**
   * The interface was just created and knows no endpoints: its next apply gives it the
   * remembered ones. Afterwards WireGuard's roaming owns them; an apply that set them again
   * would move a peer that roamed since the last poll back to its old, dead address.
   */
  #linkFresh = false;

  private constructor(opts: WireGuardManagerOptions, endpoints: Map<string, string>) {
    this.#opts = {
      interface: opts.interface,
      configPath: opts.configPath,
      privateKey: opts.privateKey,
      listenPort: opts.listenPort,
      address: opts.address,
      batchMs: opts.batchMs ?? 200,
      implementation: opts.implementation ?? "auto",
      wireguardGo: opts.wireguardGo ?? "wireguard-go",
      commandTimeoutMs: opts.commandTimeoutMs ?? 10_000,
      log: opts.log,
    };
    this.#exec = opts.exec ?? execRunner();
    this.#desired = [...(opts.peers ?? [])];
    this.#endpoints = endpoints;
    this.#updates = new SerialCoalescer(this.#opts.batchMs, (peers) => this.#apply(peers));
  }

  /** Checks the options and prepares the config directory; touches no interface yet. */
  static async create(opts: WireGuardManagerOptions): Promise<WireGuardManager> {
    const invalid = (what: string) => new GatewayError("E_WG_CONFIG_INVALID", what);
    if (!IFNAME.test(opts.interface)) throw invalid(`bad interface name ${opts.interface}`);
    if (decodeWgKey(opts.privateKey.reveal()) === undefined) {
      throw invalid("the private key is not a WireGuard key");
    }
    const port = opts.listenPort;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw invalid(`bad listen port ${port}`);
    }
    if (parseCidr(opts.address) === undefined) throw invalid(`bad address ${opts.address}`);
    checkWgPeers(opts.peers ?? []);
    await ensureDir(dirname(opts.configPath));
    await removeStrayTemps(opts.configPath);
    await unlink(`${opts.configPath}.sync`).catch(() => undefined); // a crashed apply's copy
    // Endpoints the previous run learnt: with them this side can re-establish sessions at once
    // after a restart instead of waiting minutes for every peer's next handshake.
    const previous = await readFile(opts.configPath, "utf8").catch(() => "");
    return new WireGuardManager(opts, parseWgConfigEndpoints(previous));
  }

  /** `wg syncconf` runs so far (attempted, failed ones included). */
  get applies(): number {
    return this.#applies;
  }

  /** The pid of the wireguard-go this manager runs, if it runs one. */
  get userspacePid(): number | undefined {
    return this.#userspace?.running ? this.#userspace.pid : undefined;
  }

  /** Creates the interface if missing, sets address, key, port and peers, brings it up. */
  ensureInterface(): Promise<void> {
    return this.#updates.run(async () => {
      const iface = this.#opts.interface;
      if (!(await this.#linkExists())) await this.#createLink();
      await this.#apply(this.#desired);
      await this.#command("E_WG_INTERFACE", "ip", [
        "address",
        "replace",
        this.#opts.address,
        "dev",
        iface,
      ]);
      await this.#command("E_WG_INTERFACE", "ip", ["link", "set", "dev", iface, "up"]);
    });
  }

  /**
   * Makes `peers` the interface's whole peer set. Calls within `batchMs` share one apply, the
   * latest call's set winning; each promise settles with the first apply that started after it.
   */
  setPeers(peers: readonly WgPeer[]): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    try {
      checkWgPeers(peers);
    } catch (err) {
      return Promise.reject(err);
    }
    const snapshot = peers.map(({ publicKey, ip }) => ({ publicKey, ip }));
    this.#desired = snapshot;
    return this.#updates.submit(snapshot);
  }

  /**
   * Sends one datagram (to the discard port) to every peer whose endpoint is known, so WireGuard
   * starts a handshake now. After a restart that lost the sessions (wireguard-go), instances look
   * unhealthy until they shake hands again, which otherwise waits for the peers' own timers
   * (minutes). Returns how many peers were woken.
   */
  async wakePeers(): Promise<number> {
    const targets = this.#desired.filter((p) => this.#endpoints.has(p.publicKey));
    if (targets.length === 0) return 0;
    const socket = createSocket("udp4");
    socket.on("error", () => {});
    await Promise.all(
      targets.map(
        (p) =>
          new Promise<void>((resolve) => socket.send(Buffer.alloc(1), 9, p.ip, () => resolve())),
      ),
    );
    socket.close();
    return targets.length;
  }

  /** Every peer's status from `wg show <if> dump`. */
  async peerStatus(): Promise<Map<string, WgPeerStatus>> {
    const { stdout } = await this.#command("E_WG_SHOW", "wg", [
      "show",
      this.#opts.interface,
      "dump",
    ]);
    const status = parseWgDump(stdout);
    let moved = false;
    for (const [key, s] of status) {
      if (
        s.endpoint !== undefined &&
        isWgEndpoint(s.endpoint) &&
        this.#endpoints.get(key) !== s.endpoint
      ) {
        this.#endpoints.set(key, s.endpoint);
        moved = true;
      }
    }
    // Keep the config file's endpoints current, so a restart can reach every peer at once.
    if (moved && !this.#closed) {
      this.#updates
        .submit(this.#desired)
        .catch((err: unknown) => this.#opts.log.warn({ err }, "recording peer endpoints failed"));
    }
    return status;
  }

  /** Latest handshake per public key, ms since the epoch (0 = never). */
  async handshakes(): Promise<Map<string, number>> {
    const status = await this.peerStatus();
    return new Map([...status].map(([key, s]) => [key, s.lastHandshakeMs]));
  }

  /** Polls `handshakes()` now and then every `intervalMs`; failures are logged, never thrown. */
  startHealthPolling(
    intervalMs: number,
    onUpdate: (handshakes: Map<string, number>) => void,
  ): { stop(): void } {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const poller = {
      stop: () => {
        stopped = true;
        clearTimeout(timer);
        this.#pollers.delete(poller);
      },
    };
    const tick = async (): Promise<void> => {
      try {
        const handshakes = await this.handshakes();
        if (!stopped) onUpdate(handshakes);
      } catch (err) {
        this.#opts.log.warn({ err }, "WireGuard health poll failed");
      }
      if (!stopped) timer = setTimeout(tick, intervalMs).unref();
    };
    this.#pollers.add(poller);
    timer = setTimeout(tick, 0).unref();
    return poller;
  }

  /**
   * Stops polling, fails pending `setPeers` calls with E_WG_CLOSED and waits for a running
   * apply. The interface stays up with its peers, kernel or wireguard-go alike (which is let
   * go, not stopped): a restart or hand-over keeps every tunnel and session, and the next
   * generation adopts the interface. `ip link del` is what ends it for good.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      for (const poller of [...this.#pollers]) poller.stop();
      await this.#updates.close(() => this.#closedError());
      this.#userspace?.release();
      this.#userspace = undefined;
    })();
    return this.#closed;
  }

  #closedError(): GatewayError<WgErrorCode> {
    return new GatewayError("E_WG_CLOSED", "the WireGuard manager is closed");
  }

  /**
   * Writes the config file (with every remembered endpoint, for the next start) and syncs the
   * interface to it. A live interface is synced from a copy without endpoints (`wg syncconf`
   * leaves a peer's endpoint alone when the file names none): see `#linkFresh`.
   */
  async #apply(peers: readonly WgPeer[]): Promise<void> {
    this.#applies += 1;
    const config = (withEndpoints: boolean) =>
      renderWgConfig({
        privateKey: this.#opts.privateKey.reveal(),
        listenPort: this.#opts.listenPort,
        peers: peers.map((p) => {
          const endpoint = withEndpoints ? this.#endpoints.get(p.publicKey) : undefined;
          return endpoint === undefined ? p : { ...p, endpoint };
        }),
      });
    const { configPath } = this.#opts;
    const fresh = this.#linkFresh;
    const syncPath = fresh ? configPath : `${configPath}.sync`;
    try {
      await writeFileAtomic(configPath, config(true), 0o600);
      if (!fresh) await writeFile(syncPath, config(false), { mode: 0o600, flag: "w" });
    } catch (err) {
      throw this.#wrap("E_WG_APPLY", err);
    }
    try {
      await this.#command("E_WG_APPLY", "wg", ["syncconf", this.#opts.interface, syncPath]);
    } finally {
      if (!fresh) await unlink(syncPath).catch(() => undefined);
    }
    this.#linkFresh = false;
    this.#opts.log.debug(
      { peers: peers.length, applies: this.#applies },
      "WireGuard peers applied",
    );
  }

  async #linkExists(): Promise<boolean> {
    try {
      await this.#exec.run(
        "ip",
        ["link", "show", "dev", this.#opts.interface],
        this.#opts.commandTimeoutMs,
      );
      return true;
    } catch (err) {
      if (err instanceof CommandError && /does not exist/.test(err.stderr)) return false;
      throw this.#wrap("E_WG_INTERFACE", err);
    }
  }

  async #createLink(): Promise<void> {
    const { interface: iface, implementation, log } = this.#opts;
    this.#linkFresh = true;
    if (implementation !== "userspace") {
      try {
        await this.#exec.run(
          "ip",
          ["link", "add", "dev", iface, "type", "wireguard"],
          this.#opts.commandTimeoutMs,
        );
        log.info({ interface: iface }, "created kernel WireGuard interface");
        return;
      } catch (err) {
        if (implementation === "kernel") throw this.#wrap("E_WG_INTERFACE", err);
        const reason = err instanceof CommandError ? err.stderr.trim() : String(err);
        log.info({ interface: iface, reason }, "no kernel WireGuard; starting wireguard-go");
      }
    }
    await this.#userspace?.stop();
    this.#userspace = await WireguardGoProcess.start({
      runner: this.#exec,
      binary: this.#opts.wireguardGo,
      iface,
      log,
      readyTimeoutMs: 5_000,
      commandTimeoutMs: this.#opts.commandTimeoutMs,
    });
  }

  async #command(code: WgErrorCode, file: string, args: readonly string[]) {
    try {
      return await this.#exec.run(file, args, this.#opts.commandTimeoutMs);
    } catch (err) {
      throw this.#wrap(code, err);
    }
  }

  /**
   * The error callers and logs see: the command's stderr with the private key cut out, and no
   * `cause` (which loggers serialize, raw stderr included).
   */
  #wrap(code: WgErrorCode, err: unknown): GatewayError<WgErrorCode> {
    const key = this.#opts.privateKey.reveal();
    const scrub = (text: string) => text.split(key).join("[redacted]").trim();
    if (err instanceof CommandError) {
      const detail = err.stderr ? `: ${scrub(err.stderr)}` : "";
      return new GatewayError(code, `${err.message}${detail}`);
    }
    return new GatewayError(code, scrub(err instanceof Error ? err.message : String(err)));
  }
}
