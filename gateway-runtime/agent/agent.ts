/**
 * The CVM agent's loop: observe the tunnel, let the `Checker` decide, act (register, rebuild the
 * interface, force a handshake), repeat every `checkIntervalMs`. One step at a time; `stop()`
 * waits for the running step, then takes the tunnel down.
 */
import type { Logger } from "../log/index.js";
import { Checker, type CheckerSettings, type Observation } from "./checker.js";
import { type GatewayClientOptions, registerCvm } from "./client.js";
import { keepPeers, planFromResponse, type TunnelPeer, type TunnelPlan } from "./plan.js";
import type { AgentTunnel, TunnelStatus } from "./tunnel.js";

export interface CvmAgentOptions {
  readonly client: GatewayClientOptions;
  readonly publicKey: string;
  readonly tunnel: Pick<
    AgentTunnel,
    "apply" | "update" | "rehandshake" | "status" | "close" | "plan"
  >;
  readonly checker: CheckerSettings;
  readonly checkIntervalMs: number;
  readonly log: Logger;
  /** @default registerCvm */
  readonly register?: (client: GatewayClientOptions, publicKey: string) => Promise<unknown>;
  /** @default Date.now */
  readonly now?: () => number;
}

export class CvmAgent {
  readonly #o: CvmAgentOptions;
  readonly #checker: Checker;
  readonly #now: () => number;
  readonly #register: NonNullable<CvmAgentOptions["register"]>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;
  /** Set by a (re)configuration; cleared, with a log line, by the first handshake after it. */
  #awaitingFirstHandshake = false;

  constructor(options: CvmAgentOptions) {
    this.#o = options;
    this.#checker = new Checker(options.checker);
    this.#now = options.now ?? Date.now;
    this.#register = options.register ?? registerCvm;
  }

  /** Runs the first step now and schedules the rest. */
  start(): void {
    this.#schedule(0);
  }

  /** One observe-decide-act step (tests call it directly). */
  async step(): Promise<void> {
    const { tunnel, log } = this.#o;
    const configured = tunnel.plan !== undefined;
    let status: TunnelStatus = { linkUp: false, latestHandshakeMs: 0 };
    if (configured) status = await tunnel.status();
    const obs: Observation = { now: this.#now(), configured, ...status };
    if (this.#awaitingFirstHandshake && status.latestHandshakeMs > 0) {
      this.#awaitingFirstHandshake = false;
      log.info({ clientIp: tunnel.plan?.clientIp }, "tunnel up: handshake with the gateway");
    }
    const action = this.#checker.decide(obs);
    if (!action) return;
    switch (action.kind) {
      case "register":
        await this.#registerAndApply(action.reason);
        return;
      case "rebuild":
        await this.#rebuild(action.reason);
        return;
      case "refresh":
        this.#checker.recordRefresh(obs.now);
        await this.#refresh(action.reason, status.peerHandshakesMs);
        return;
      case "rehandshake":
        log.info({ reason: action.reason }, "forcing a WireGuard handshake");
        // Stamped before the commands: the handshake they start can complete (in WireGuard's
        // whole seconds) before they return, and must still count as the answer.
        this.#checker.recordRehandshake(obs.now);
        await tunnel.rehandshake();
        return;
    }
  }

  /** Stops the loop, waits for a running step and takes the tunnel down. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    await this.#o.tunnel.close();
  }

  async #registerAndApply(reason: string): Promise<void> {
    const { client, publicKey, log } = this.#o;
    log.info({ gateway: client.gateway, publicKey, reason }, "registering with the gateway");
    let plan: TunnelPlan;
    try {
      plan = planFromResponse(await this.#register(client, publicKey));
    } catch (err) {
      this.#failed(err, "registration failed");
      return;
    }
    await this.#configure(plan);
  }

  /** A full configuration of the tunnel from `plan`, counted by the checker. */
  async #configure(plan: TunnelPlan): Promise<void> {
    const { tunnel, log } = this.#o;
    const previous = tunnel.plan;
    const appliedAt = this.#now();
    try {
      await tunnel.apply(plan);
    } catch (err) {
      this.#failed(err, "configuring the tunnel failed");
      return;
    }
    if (previous && previous.clientIp !== plan.clientIp) {
      log.warn({ from: previous.clientIp, to: plan.clientIp }, "the gateway gave a new address");
    }
    this.#checker.recordConfigure(appliedAt, true);
    this.#awaitingFirstHandshake = true;
    log.info(
      {
        clientIp: plan.clientIp,
        address: plan.address,
        servers: plan.peers.map((p) => ({ ip: p.ip, endpoint: p.endpoint })),
      },
      "registered; tunnel configured",
    );
  }

  #failed(err: unknown, message: string): void {
    this.#checker.recordConfigure(this.#now(), false);
    this.#o.log.error(
      {
        err: (err as Error).message,
        code: (err as { code?: string }).code,
        retryInMs: this.#checker.retryDelay(),
      },
      message,
    );
  }

  /**
   * Registers again while the tunnel is healthy, and changes only what the answer changes: the
   * same address with other hosts updates the peers in place (the sessions of the hosts that
   * stay are kept); a new address is a full configuration, as after a registration. A host the
   * answer leaves out is dropped only once it no longer handshakes.
   */
  async #refresh(reason: string, handshakes?: ReadonlyMap<string, number>): Promise<void> {
    const { client, publicKey, tunnel, log } = this.#o;
    const previous = tunnel.plan;
    let plan: TunnelPlan;
    try {
      plan = planFromResponse(await this.#register(client, publicKey));
      // A host left out (draining, or gone) stays a peer while it handshakes: connections
      // through a draining host must not be cut.
      const now = this.#now();
      const live = (peer: TunnelPeer) =>
        now - (handshakes?.get(peer.publicKey) ?? 0) < this.#o.checker.handshakeTimeoutMs;
      if (previous) plan = keepPeers(plan, previous, live);
    } catch (err) {
      log.warn(
        { err: (err as Error).message, code: (err as { code?: string }).code },
        "refreshing the registration failed; the tunnel stays as it is",
      );
      return;
    }
    if (previous && samePlan(previous, plan)) {
      log.debug({ reason }, "registration refreshed: nothing changed");
      return;
    }
    if (!previous || previous.address !== plan.address) {
      await this.#configure(plan);
      return;
    }
    try {
      await tunnel.update(plan);
    } catch (err) {
      log.error({ err: (err as Error).message }, "updating the gateway peers failed");
      return;
    }
    log.info(
      { servers: plan.peers.map((p) => ({ ip: p.ip, endpoint: p.endpoint })) },
      "registration refreshed: gateway peers updated",
    );
  }

  async #rebuild(reason: string): Promise<void> {
    const { tunnel, log } = this.#o;
    const plan = tunnel.plan;
    if (!plan) return;
    log.warn({ reason }, "rebuilding the WireGuard interface");
    const appliedAt = this.#now();
    try {
      await tunnel.apply(plan);
    } catch (err) {
      this.#checker.recordConfigure(this.#now(), false);
      log.error(
        { err: (err as Error).message, retryInMs: this.#checker.retryDelay() },
        "rebuild failed",
      );
      return;
    }
    this.#checker.recordConfigure(appliedAt, true);
    this.#awaitingFirstHandshake = true;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.step()
        .catch((err: unknown) => this.#o.log.error({ err: (err as Error).message }, "check failed"))
        .finally(() => this.#schedule(this.#o.checkIntervalMs));
    }, delayMs);
  }
}

/** Plans render the same bytes for the same answer (peers sorted), so comparing them is exact. */
function samePlan(a: TunnelPlan, b: TunnelPlan): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
