/**
 * What the primary and its proxy workers say to each other over the cluster IPC channel.
 * Primary → worker: the instance directory (whole, after every change), the session ticket
 * keys (after each rotation), and "reload the certificate". Worker → primary: "hello" once it
 * listens for messages (messages sent earlier could be lost while the worker loads), answered
 * with the directory and the keys; "ready" once its listeners are up. The admin API's
 * counters: the primary sends "stats" with a request id, each worker answers "stats" with the
 * same id and its snapshot.
 */
import type { ProxySnapshot } from "../proxy/stats.js";
import type { TicketKeys } from "../proxy/tls-options.js";
import type { Instance } from "../registry/index.js";

export type ToWorker =
  | { readonly type: "directory"; readonly instances: readonly Instance[] }
  | { readonly type: "ticket-keys"; readonly keys: TicketKeys }
  | { readonly type: "reload-certificate" }
  | { readonly type: "draining"; readonly draining: boolean }
  | { readonly type: "stats"; readonly id: number };

export type ToPrimary =
  | { readonly type: "hello" }
  | { readonly type: "ready" }
  | { readonly type: "stats"; readonly id: number; readonly snapshot: ProxySnapshot };

const TYPES = new Set([
  "directory",
  "ticket-keys",
  "reload-certificate",
  "draining",
  "hello",
  "ready",
  "stats",
]);

/** A message of ours (the channel also carries Node's own cluster messages). */
export function isMessage<T extends ToWorker | ToPrimary>(value: unknown): value is T {
  return (
    typeof value === "object" &&
    value !== null &&
    TYPES.has(String((value as { type?: unknown }).type))
  );
}
