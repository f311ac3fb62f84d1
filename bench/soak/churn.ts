/**
 * The soak's registration churn (`CHURN` in plan.ts) against the real gateway: new instances
 * registering over the RPC port with their RA-TLS client certificates, registered ones coming
 * back with a new WireGuard key (a rebooted CVM), operators removing some (`RemoveInstance`),
 * and the rest left for the gateway's recycling. Every change reaches the state file,
 * WireGuard's peers, the directory and, through the primary, every proxy worker: the paths a
 * long-running gateway repeats all day. Instances come from `fleet` (bench/registration), the
 * certificates from the gateway's client CA; no CVM behind them answers, so none of them is
 * healthy and none takes traffic.
 */
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import type { TestCert } from "../../testkit/ra-tls.js";
import { type BenchCvm, quantile, time } from "../registration/common.js";
import { CHURN, GATEWAY } from "./plan.js";
import type { ChurnTotals } from "./stats.js";
import type { SoakGateway } from "./gateway.js";

const ERROR_SAMPLES = 5;

interface Live {
  cvm: BenchCvm;
  readonly cert: TestCert;
  registeredAt: number;
}

export class Churn {
  readonly #gw: SoakGateway;
  readonly #pool: readonly BenchCvm[];
  #next = 0;
  readonly #live = new Map<string, Live>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #latencies: number[] = [];
  readonly #errorSamples: string[] = [];
  readonly #counts = {
    registered: 0,
    reregistered: 0,
    removed: 0,
    removedAlreadyGone: 0,
    errors: 0,
    skipped: 0,
  };
  #timer: NodeJS.Timeout | undefined;

  /** `pool`: the instances to register, each once (a new instance id per registration). */
  constructor(gw: SoakGateway, pool: readonly BenchCvm[]) {
    this.#gw = gw;
    this.#pool = pool;
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), CHURN.everyMs);
  }

  /** No new change; resolves once the ones in flight are answered. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#inFlight);
  }

  totals(): ChurnTotals {
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    return {
      ...this.#counts,
      registerP50Ms: quantile(sorted, 0.5),
      registerP99Ms: quantile(sorted, 0.99),
      errorSamples: [...this.#errorSamples],
    };
  }

  #tick(): void {
    if (this.#inFlight.size >= CHURN.maxInFlight) {
      this.#counts.skipped += 1;
      return;
    }
    this.#forgetRecycled();
    const change = this.#choose();
    if (!change) return;
    const run = change().catch((error: unknown) => {
      this.#counts.errors += 1;
      const message = error instanceof Error ? error.message : String(error);
      if (this.#errorSamples.length < ERROR_SAMPLES && !this.#errorSamples.includes(message))
        this.#errorSamples.push(message);
    });
    this.#inFlight.add(run);
    void run.finally(() => this.#inFlight.delete(run));
  }

  /**
   * Instances not registered again for longer than the recycle timeout and a round of it are
   * gone on the gateway's side: no more changes to them (a RemoveInstance would find nothing).
   */
  #forgetRecycled(): void {
    const horizon = Date.now() - GATEWAY.recycleTimeoutMs - 10_000;
    for (const [id, l] of this.#live) if (l.registeredAt < horizon) this.#live.delete(id);
  }

  #choose(): (() => Promise<void>) | undefined {
    const { register, reregister, remove } = CHURN.weights;
    const roll = Math.random();
    const some = this.#pickLive();
    if (this.#live.size < CHURN.minLive || roll < register) return this.#registerNew();
    if (!some) return undefined;
    if (roll < register + reregister) return () => this.#registerAgain(some);
    if (roll < register + reregister + remove) return () => this.#remove(some);
    return undefined;
  }

  #pickLive(): Live | undefined {
    if (this.#live.size === 0) return undefined;
    const k = Math.floor(Math.random() * this.#live.size);
    let i = 0;
    for (const l of this.#live.values()) if (i++ === k) return l;
    return undefined;
  }

  #registerNew(): (() => Promise<void>) | undefined {
    const cvm = this.#pool[this.#next];
    if (!cvm) return undefined; // the pool is sized for the run; past it, no more new ones
    this.#next += 1;
    return async () => {
      const cert = this.#gw.certificate(cvm);
      const [ms] = await time(() => this.#gw.register(cvm, cert));
      this.#latencies.push(ms);
      this.#live.set(cvm.instanceId, { cvm, cert, registeredAt: Date.now() });
      this.#counts.registered += 1;
    };
  }

  async #registerAgain(l: Live): Promise<void> {
    const cvm = { ...l.cvm, publicKey: generateWgKeyPair().publicKey };
    const [ms] = await time(() => this.#gw.register(cvm, l.cert));
    this.#latencies.push(ms);
    l.cvm = cvm;
    l.registeredAt = Date.now();
    this.#counts.reregistered += 1;
  }

  async #remove(l: Live): Promise<void> {
    this.#live.delete(l.cvm.instanceId);
    if (await this.#gw.remove(l.cvm.instanceId)) this.#counts.removed += 1;
    else this.#counts.removedAlreadyGone += 1;
  }
}
