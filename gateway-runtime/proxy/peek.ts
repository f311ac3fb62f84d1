import type { Socket } from "node:net";
import { GatewayError } from "../errors.js";
import { type ClientHello, parseClientHello } from "./clienthello.js";

/** The socket-level reasons a ClientHello did not arrive (the parser has its own codes). */
export class PeekError extends GatewayError<"E_HELLO_TIMEOUT" | "E_HELLO_TRUNCATED"> {}

/**
 * Reads from `socket` until a whole ClientHello is in, within `timeoutMs`. Resolves with the
 * hello and every byte read so far (which the caller forwards or replays); the socket is left
 * paused with no listeners of ours. Rejects with ClientHelloError on bad input, PeekError on
 * timeout or on an early end or socket error.
 */
export function readClientHello(
  socket: Socket,
  timeoutMs: number,
): Promise<{ hello: ClientHello; data: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
      socket.off("close", onEnd);
      socket.pause();
    };
    const fail = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      const data = chunks.length === 1 ? chunk : Buffer.concat(chunks, length);
      try {
        const result = parseClientHello(data);
        if (result.status === "done") {
          cleanup();
          resolve({ hello: result.hello, data });
        }
      } catch (error) {
        fail(error as Error);
      }
    };
    const onEnd = () =>
      fail(
        new PeekError("E_HELLO_TRUNCATED", "connection ended before the ClientHello was complete"),
      );
    // A reset (ECONNRESET) or any socket error before the hello is whole is the client's
    // doing, like an early end: a stable code, not an internal error in the log and metrics.
    const onError = (error: NodeJS.ErrnoException) =>
      fail(
        new PeekError(
          "E_HELLO_TRUNCATED",
          `connection failed before the ClientHello was complete: ${error.code ?? error.message}`,
        ),
      );
    const timer = setTimeout(
      () =>
        fail(new PeekError("E_HELLO_TIMEOUT", `no complete ClientHello within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onError);
    socket.resume();
  });
}
