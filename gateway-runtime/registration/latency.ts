/**
 * Registration latency: one RegisterCvm from the request to the answer (attestation, the
 * authorization webhook, the durable store, WireGuard), by result. In its own prom-client
 * registry, as the data plane's histograms are (proxy/timings.ts); the admin API renders it.
 */
import { Histogram, Registry } from "prom-client";
import type { MetricJson } from "../proxy/index.js";

/** TDX quote verification with PCCS collateral and an etcd commit take up to seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class RegistrationLatency {
  readonly #registry = new Registry();
  readonly #histogram = new Histogram({
    name: "gateway_registration_duration_seconds",
    help: "RegisterCvm requests from arrival to answer, by result (ok, or error when refused or failed).",
    labelNames: ["result"],
    buckets: BUCKETS,
    registers: [this.#registry],
  });

  constructor() {
    // Both series from the first scrape, so a rate over them never starts from nothing.
    this.#histogram.zero({ result: "ok" });
    this.#histogram.zero({ result: "error" });
  }

  observe(seconds: number, ok: boolean): void {
    this.#histogram.observe({ result: ok ? "ok" : "error" }, seconds);
  }

  json(): Promise<MetricJson[]> {
    return this.#registry.getMetricsAsJSON() as Promise<MetricJson[]>;
  }
}
