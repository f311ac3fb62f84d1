/**
 * The data plane's latency histograms: the TLS handshake of terminated connections and the
 * connect to the instance that answered. Each data plane (the primary alone, or every proxy
 * worker) keeps its own prom-client registry, never the global one, so several planes in one
 * process (tests) do not collide; the primary sums the planes' JSON with
 * `AggregatorRegistry.aggregate` (admin/metrics.ts). No app or instance label: one series set
 * per process bounds the cardinality, and the per-app picture is in the counters.
 */
import { Histogram, type MetricObjectWithValues, type MetricValue, Registry } from "prom-client";

/** A metric as `Registry.getMetricsAsJSON` gives it: plain data, sent over the workers' IPC. */
export type MetricJson = MetricObjectWithValues<MetricValue<string> & { metricName?: string }>;

/** Handshakes on loopback take ~1 ms, over the internet tens; a stalled client up to the bound. */
const HANDSHAKE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** A connect over WireGuard is one round trip to the CVM; seconds mean a lost SYN or a dead peer. */
const CONNECT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 10];

export class ProxyTimings {
  readonly #registry = new Registry();
  readonly #handshake = new Histogram({
    name: "gateway_tls_handshake_duration_seconds",
    help: "TLS handshakes the gateway terminated, from the ClientHello to the client's Finished.",
    buckets: HANDSHAKE_BUCKETS,
    registers: [this.#registry],
  });
  readonly #connect = new Histogram({
    name: "gateway_instance_connect_duration_seconds",
    help: "Time to a connected instance: from the first dial to the one that answered first.",
    buckets: CONNECT_BUCKETS,
    registers: [this.#registry],
  });

  handshake(seconds: number): void {
    this.#handshake.observe(seconds);
  }

  connect(seconds: number): void {
    this.#connect.observe(seconds);
  }

  json(): Promise<MetricJson[]> {
    return this.#registry.getMetricsAsJSON() as Promise<MetricJson[]>;
  }

  /** Every histogram with no observation: lists the families when no plane answered. */
  static empty(): Promise<MetricJson[]> {
    return new ProxyTimings().json();
  }
}
