import { connect, type Socket } from "node:net";
import { GatewayError, ignoreError } from "../errors.js";
import type { Instance } from "../registry/index.js";
import { ReusedReads } from "./read-buffers.js";

export type ConnectErrorCode = "E_CONNECT_FAILED" | "E_CONNECT_TIMEOUT";

export class ConnectError extends GatewayError<ConnectErrorCode> {}

export interface Connected {
  readonly socket: Socket;
  readonly instance: Instance;
  /** With `reuseReads`: the socket's reads, to be consumed instead of its 'data' events. */
  readonly reads?: ReusedReads;
}

/** Told of each candidate that failed, so the next connections try it last (`select.ts`). */
export interface ConnectFailures {
  failed(instanceId: string): void;
}

export interface RaceOptions {
  readonly signal?: AbortSignal;
  /** Read the winner into reused buffers (`read-buffers.ts`). */
  readonly reuseReads?: boolean;
  /**
   * 0: dial every candidate at once. Otherwise dial them in order, the next one when the last
   * failed or has not answered within this many ms (RFC 8305's "connection attempt delay").
   */
  readonly attemptDelayMs?: number;
  readonly failures?: ConnectFailures;
}

/** `this`: a socket given up on that never connected. */
function dropSilent(this: Socket): void {
  this.destroy();
}

/**
 * A candidate still connecting when the race ended. Closing it now would often send a FIN on a
 * connection the kernel has already set up (its SYN-ACK arrived with the winner's), and the
 * side that sends the first FIN keeps the pair in TIME_WAIT for a minute: two per new
 * connection under the race, which runs out the local ports to a CVM under load
 * (BENCHMARKS.md, "Several instances"). So it is reset once it connects
 * (RST: no TIME_WAIT on either side, no half-open connection left on the CVM), or dropped if it
 * has not connected within `timeoutMs` (a connect that never completed leaves nothing behind).
 * It does not hold the process open meanwhile.
 */
function abandon(socket: Socket, timeoutMs: number): void {
  socket.unref();
  socket.setTimeout(timeoutMs);
  socket.once("timeout", dropSilent);
}

/**
 * Connects to the candidates and keeps the first that answers; the others are reset (see
 * `abandon`). Bounded by `timeoutMs` in all; an aborted signal cancels every attempt. A
 * candidate that refused, or (dialled in turn) was still silent when a later one answered, is
 * reported to `failures`.
 */
export function raceConnect(
  candidates: readonly Instance[],
  port: number,
  timeoutMs: number,
  options: RaceOptions = {},
): Promise<Connected> {
  const { signal, reuseReads = false, attemptDelayMs = 0, failures } = options;
  return new Promise((resolve, reject) => {
    /**
     * Sockets still connecting, in the order they were dialled, with their reads. A socket
     * reads only once its 'connect' has been handled, so a loser never reads: its buffers can
     * go back to their pool as soon as it is given up on.
     */
    const pending = new Map<Socket, { instance: Instance; reads: ReusedReads | undefined }>();
    const errors: string[] = [];
    let next = 0;
    let done = false;
    let delay: NodeJS.Timeout | undefined;
    /** `silent`: nothing answered in time, so nothing pending will; otherwise it may yet. */
    const finish = (error?: Error, silent = false) => {
      done = true;
      clearTimeout(timer);
      clearTimeout(delay);
      signal?.removeEventListener("abort", onAbort);
      for (const [s, { reads }] of pending) {
        if (silent) s.destroy();
        else abandon(s, timeoutMs);
        reads?.release();
      }
      pending.clear();
      if (error) reject(error);
    };
    const onAbort = () => finish(new ConnectError("E_CONNECT_FAILED", "connect cancelled"));
    const timer = setTimeout(() => {
      finish(
        new ConnectError(
          "E_CONNECT_TIMEOUT",
          `no instance answered on port ${port} within ${timeoutMs} ms`,
        ),
        true,
      );
    }, timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });

    const dial = (instance: Instance) => {
      const reads = reuseReads ? new ReusedReads() : undefined;
      const socket = connect({
        host: instance.ip,
        port,
        noDelay: true,
        ...(reads ? { onread: reads.onread } : {}),
      });
      pending.set(socket, { instance, reads });
      const onError = (error: Error) => {
        // Not pending any more: a loser finish() gave up on already.
        if (pending.delete(socket)) reads?.release();
        socket.destroy();
        // A refusal that lost the race to another answer still counts against its instance.
        failures?.failed(instance.id);
        if (done) return;
        errors.push(`${instance.id}@${instance.ip}:${port}: ${error.message}`);
        if (next < candidates.length) {
          clearTimeout(delay);
          dialNext();
        } else if (pending.size === 0) {
          finish(
            new ConnectError("E_CONNECT_FAILED", `every instance refused: ${errors.join("; ")}`),
          );
        }
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        if (done) {
          socket.resetAndDestroy(); // a loser (see `abandon`)
          return;
        }
        pending.delete(socket);
        // This listener would keep the whole race (its closures, timers, the losers' list)
        // alive for the life of the connection.
        socket.off("error", onError).on("error", ignoreError);
        // Dialled in turn, every candidate still pending was dialled earlier and stayed silent.
        if (attemptDelayMs > 0 && failures) {
          for (const { instance: i } of pending.values()) failures.failed(i.id);
        }
        finish();
        resolve(reads ? { socket, instance, reads } : { socket, instance });
      });
    };
    const dialNext = () => {
      const instance = candidates[next++] as Instance;
      dial(instance);
      if (next < candidates.length) delay = setTimeout(dialNext, attemptDelayMs);
    };

    if (candidates.length === 0) finish(new ConnectError("E_CONNECT_FAILED", "no candidates"));
    else if (attemptDelayMs > 0) dialNext();
    else for (next = 0; next < candidates.length; ) dial(candidates[next++] as Instance);
  });
}

/**
 * Awaits both (a TLS handshake and the dial beside it); if either fails, the other's socket is
 * destroyed and the first error thrown.
 */
export async function settleBoth<
  A extends { destroy(): unknown },
  B extends { socket: { destroy(): unknown } },
>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === "fulfilled" && rb.status === "fulfilled") return [ra.value, rb.value];
  if (ra.status === "fulfilled") ra.value.destroy();
  if (rb.status === "fulfilled") rb.value.socket.destroy();
  throw ra.status === "rejected" ? ra.reason : (rb as PromiseRejectedResult).reason;
}
