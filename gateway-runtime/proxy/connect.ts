import { connect, type Socket } from "node:net";
import { GatewayError } from "../errors.js";
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

/**
 * Connects to every candidate at once and keeps the first that answers; the others are
 * closed. Bounded by `timeoutMs` in all; an aborted signal cancels every attempt.
 * `reuseReads` reads the socket into reused buffers (`read-buffers.ts`).
 */
export function raceConnect(
  candidates: readonly Instance[],
  port: number,
  timeoutMs: number,
  options: { readonly signal?: AbortSignal; readonly reuseReads?: boolean } = {},
): Promise<Connected> {
  const { signal, reuseReads = false } = options;
  return new Promise((resolve, reject) => {
    const pending = new Set<Socket>();
    const errors: string[] = [];
    let done = false;
    const finish = (error?: Error) => {
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      for (const s of pending) s.destroy();
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
      );
    }, timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });

    for (const instance of candidates) {
      const reads = reuseReads ? new ReusedReads() : undefined;
      const socket = connect({
        host: instance.ip,
        port,
        noDelay: true,
        ...(reads ? { onread: reads.onread } : {}),
      });
      pending.add(socket);
      socket.once("connect", () => {
        if (done) return;
        pending.delete(socket);
        finish();
        resolve(reads ? { socket, instance, reads } : { socket, instance });
      });
      socket.once("error", (error) => {
        pending.delete(socket);
        socket.destroy();
        errors.push(`${instance.id}@${instance.ip}:${port}: ${error.message}`);
        if (!done && pending.size === 0) {
          finish(
            new ConnectError("E_CONNECT_FAILED", `every instance refused: ${errors.join("; ")}`),
          );
        }
      });
    }
    if (candidates.length === 0) finish(new ConnectError("E_CONNECT_FAILED", "no candidates"));
  });
}
