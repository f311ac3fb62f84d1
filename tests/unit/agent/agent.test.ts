/**
 * The agent's loop over a tunnel that stands in for WireGuard: a manual clock, and a handshake
 * that completes while the configuring commands still run (as wireguard-go does), reported in
 * whole seconds like `wg show dump`.
 */
import { describe, expect, it } from "vitest";
import { CvmAgent } from "../../../gateway-runtime/agent/agent.js";
import type { TunnelPlan } from "../../../gateway-runtime/agent/plan.js";
import type { TunnelStatus } from "../../../gateway-runtime/agent/tunnel.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";

const T0 = 1_700_000_000_000; // a whole second
const KEY = "qWQTTquPrpwULGMAy/XGUm0ljoFMbvxZbfl1DZ288X4=";
const RESPONSE = {
  wg: {
    client_ip: "10.4.0.34",
    servers: [{ pk: KEY, ip: "10.4.0.1/16", endpoint: "192.0.2.1:51820" }],
  },
};

/** A tunnel whose every configuration or forced handshake is answered `answerMs` after it starts. */
class FakeTunnel {
  plan: TunnelPlan | undefined;
  linkUp = true;
  handshakeMs = 0;
  /** Per-peer handshakes `status` reports; undefined: none reported. */
  peerHandshakesMs: Map<string, number> | undefined;
  readonly calls: string[] = [];

  constructor(
    readonly clock: { now: number },
    readonly answerMs: number,
    readonly commandsMs: number,
  ) {}

  #handshakeDuringCommands(): void {
    this.handshakeMs = this.clock.now + this.answerMs;
    this.clock.now += this.commandsMs;
  }

  async apply(plan: TunnelPlan): Promise<void> {
    this.calls.push("apply");
    this.plan = plan;
    this.linkUp = true;
    this.#handshakeDuringCommands();
  }

  async update(plan: TunnelPlan): Promise<void> {
    this.calls.push("update");
    this.plan = plan;
  }

  async rehandshake(): Promise<void> {
    this.calls.push("rehandshake");
    this.#handshakeDuringCommands();
  }

  async status(): Promise<TunnelStatus> {
    const ms = this.handshakeMs;
    return {
      linkUp: this.linkUp,
      latestHandshakeMs: ms - (ms % 1000),
      ...(this.peerHandshakesMs ? { peerHandshakesMs: this.peerHandshakesMs } : {}),
    };
  }

  async close(): Promise<void> {}
}

function agentWith(
  tunnel: FakeTunnel,
  clock: { now: number },
  answers: () => unknown = () => RESPONSE,
  refreshMs?: number,
) {
  let registrations = 0;
  const agent = new CvmAgent({
    client: { gateway: "https://192.0.2.1:8000" } as never,
    publicKey: KEY,
    tunnel,
    checker: {
      handshakeTimeoutMs: 4_000,
      handshakeWaitMs: 15_000,
      retryMs: 5_000,
      maxRetryMs: 60_000,
      ...(refreshMs === undefined ? {} : { refreshMs }),
    },
    checkIntervalMs: 250,
    log: silentLogger(),
    now: () => clock.now,
    register: async () => {
      registrations += 1;
      return answers();
    },
  });
  return { agent, registrations: () => registrations };
}

/** Steps the agent every 250 ms of the clock until `until`. */
async function stepUntil(agent: CvmAgent, clock: { now: number }, until: number): Promise<void> {
  while (clock.now < until) {
    await agent.step();
    clock.now += 250;
  }
}

describe("CvmAgent", () => {
  // The configuration starts at x.800, its handshake completes at x.850 (reported as x.000),
  // and the commands return at (x+1).100: a force stamped when they return would never count
  // as answered, so the agent would neither force again nor re-register for 15 s while the
  // gateway saw no handshake (the registration e2e failure in CI).
  for (const [what, setup] of [
    ["registration", async () => {}],
    [
      "rebuild",
      async (t: FakeTunnel, a: CvmAgent, clock: { now: number }) => {
        t.linkUp = false;
        clock.now = T0 + 10_800;
        await a.step();
      },
    ],
  ] as const) {
    it(`counts a handshake made during the ${what}'s commands as its answer, and keeps forcing every timeout`, async () => {
      const clock = { now: T0 + 800 };
      const tunnel = new FakeTunnel(clock, 50, 300);
      const { agent, registrations } = agentWith(tunnel, clock);
      await agent.step(); // registers
      expect(registrations()).toBe(1);
      await setup(tunnel, agent, clock);
      const configuredAt = clock.now - 300;
      tunnel.calls.length = 0;
      // Silent 4 s after the (floored) handshake: a force; answered at once, then again 4 s on.
      await stepUntil(agent, clock, configuredAt + 12_500);
      expect(tunnel.calls).toEqual(["rehandshake", "rehandshake", "rehandshake"]);
      expect(registrations()).toBe(1);
    });
  }

  it("re-registers when a forced handshake stays unanswered for the wait", async () => {
    const clock = { now: T0 + 800 };
    const tunnel = new FakeTunnel(clock, 50, 300);
    const { agent, registrations } = agentWith(tunnel, clock);
    await agent.step();
    tunnel.rehandshake = async () => {
      tunnel.calls.push("rehandshake"); // nobody answers
    };
    // Configured at T0.800: forced at T0+4.850, re-registered 15 s later.
    await stepUntil(agent, clock, T0 + 19_800);
    expect(tunnel.calls).toEqual(["apply", "rehandshake"]);
    expect(registrations()).toBe(1);
    await stepUntil(agent, clock, T0 + 20_000);
    expect(tunnel.calls).toEqual(["apply", "rehandshake", "apply"]);
    expect(registrations()).toBe(2);
  });

  describe("refresh", () => {
    const OTHER = "3ZHDoX6sbxQY6rT4AhKZbK8yjvhF6v7n7w6zEa0JHmc=";
    const twoHosts = {
      wg: {
        client_ip: "10.4.0.34",
        servers: [
          ...RESPONSE.wg.servers,
          { pk: OTHER, ip: "10.4.0.2/16", endpoint: "192.0.2.2:51820" },
        ],
      },
    };
    /**
     * A registered agent whose handshakes stay fresh, answering `next()` from then on; `first`
     * is the registration's answer, `peers(now)` the per-peer handshakes the tunnel reports.
     */
    async function refreshed(
      next: () => unknown,
      first: unknown = RESPONSE,
      peers?: (now: number) => Map<string, number>,
    ) {
      const clock = { now: T0 + 800 };
      const tunnel = new FakeTunnel(clock, 50, 300);
      let answer: () => unknown = () => first;
      const { agent, registrations } = agentWith(tunnel, clock, () => answer(), 10_000);
      await agent.step();
      answer = next;
      tunnel.calls.length = 0;
      // Fresh handshakes throughout: only the refresh can act.
      for (let t = 0; t < 44; t++) {
        tunnel.handshakeMs = clock.now;
        tunnel.peerHandshakesMs = peers?.(clock.now);
        await agent.step();
        clock.now += 250;
      }
      return { tunnel, registrations };
    }

    it("takes a host added to the region as a peer in place, without dropping the sessions", async () => {
      const { tunnel, registrations } = await refreshed(() => twoHosts);
      expect(registrations()).toBe(2);
      expect(tunnel.calls).toEqual(["update"]);
      expect(tunnel.plan?.peers.map((p) => p.publicKey).sort()).toEqual([KEY, OTHER].sort());
    });

    it("keeps a host the answer leaves out while it handshakes (a draining host), drops it once silent", async () => {
      const keys = (t: FakeTunnel) => t.plan?.peers.map((p) => p.publicKey).sort();
      // OTHER handshook 2 s ago (the timeout is 4 s here): connections through it still run.
      const draining = await refreshed(
        () => RESPONSE,
        twoHosts,
        (now) =>
          new Map([
            [KEY, now],
            [OTHER, now - 2_000],
          ]),
      );
      expect(draining.tunnel.calls).toEqual([]);
      expect(keys(draining.tunnel)).toEqual([KEY, OTHER].sort());
      // Silent for longer than the handshake timeout: gone.
      const gone = await refreshed(
        () => RESPONSE,
        twoHosts,
        (now) =>
          new Map([
            [KEY, now],
            [OTHER, now - 5_000],
          ]),
      );
      expect(gone.tunnel.calls).toEqual(["update"]);
      expect(keys(gone.tunnel)).toEqual([KEY]);
    });

    it("changes nothing when the answer is the same", async () => {
      const { tunnel, registrations } = await refreshed(() => RESPONSE);
      expect(registrations()).toBe(2);
      expect(tunnel.calls).toEqual([]);
    });

    it("configures the tunnel anew when the gateway gives another address", async () => {
      const moved = { wg: { ...RESPONSE.wg, client_ip: "10.4.0.35" } };
      const { tunnel } = await refreshed(() => moved);
      expect(tunnel.calls).toEqual(["apply"]);
      expect(tunnel.plan?.clientIp).toBe("10.4.0.35");
    });

    it("keeps the tunnel as it is when the refresh fails, and tries again a period later", async () => {
      const { tunnel, registrations } = await refreshed(() => {
        throw new Error("gateway unreachable");
      });
      expect(tunnel.calls).toEqual([]);
      expect(tunnel.plan?.clientIp).toBe("10.4.0.34");
      expect(registrations()).toBe(2); // at 10 s; the next is due at 20 s, after the loop
    });
  });
});
