/**
 * The Node data plane's slow path behind the HAProxy engine (`core.proxy.engine = "haproxy"`,
 * engine/haproxy/layout.ts): HAProxy owns the public ports and hands what it cannot decide
 * (unknown names, ClientHellos it cannot read, the first connection to a custom domain, the
 * gateway's own names) to a Unix socket, each connection starting with a PROXY v2 header that
 * carries the client's address. Here the header is read and stripped; the connection then goes
 * on exactly as one accepted on :443, with the header's source as the client.
 *
 * Decisions:
 * - Only a complete PROXY v2 TCP header (command PROXY, IPv4 or IPv6) is accepted. Anything
 *   else, LOCAL included (HAProxy sends it for health checks, which the slow path gets none of),
 *   is refused: behind HAProxy a connection without a client address is a misconfiguration,
 *   and guessing one would put every client under one per-IP count.
 * - Bad bytes are refused as soon as they differ from the signature, without waiting for 16.
 * - The header is bounded by the ClientHello's own bound (`timeouts.handshake`): HAProxy sends
 *   it with its first write, so a wait here means the peer is not HAProxy.
 * - Bytes read past the header (the ClientHello, when HAProxy sent it in the same write) go
 *   back into the socket (`unshift`), so the ClientHello peek reads them as on :443.
 */
import { randomBytes } from "node:crypto";
import { chmod, lstat, rename } from "node:fs/promises";
import type { Server, Socket } from "node:net";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import type { TimedAppAddress } from "./custom-domain.js";
import { type DecodedProxyV2, decodeProxyV2, PROXY_V2_SIGNATURE } from "./proxy-protocol.js";

export type SlowPathErrorCode =
  | "E_PROXY_HEADER_MISSING"
  | "E_PROXY_HEADER_TIMEOUT"
  | "E_PROXY_HEADER_TRUNCATED"
  | "E_SLOW_PATH_SOCKET";

/** Why a slow-path connection was refused before its ClientHello; counted and logged. */
export class SlowPathError extends GatewayError<SlowPathErrorCode> {}

/** The fixed part of a v2 header: signature, version/command, family, length. */
const FIXED = 16;

/** The header at the start of `bytes`, "more" while it may still become one, or "bad". */
export function proxyHeaderStatus(bytes: Buffer): DecodedProxyV2 | "more" | "bad" {
  const signed = Math.min(bytes.length, PROXY_V2_SIGNATURE.length);
  if (!bytes.subarray(0, signed).equals(PROXY_V2_SIGNATURE.subarray(0, signed))) return "bad";
  if (bytes.length < FIXED || bytes.length < FIXED + bytes.readUInt16BE(14)) return "more";
  return decodeProxyV2(bytes) ?? "bad";
}

/**
 * Reads a PROXY v2 header from `socket` within `timeoutMs` and resolves with it; the bytes after
 * it are put back into the socket, which is left paused with no listeners of ours. Rejects with
 * SlowPathError: E_PROXY_HEADER_MISSING for bytes that are not a supported PROXY v2 header,
 * E_PROXY_HEADER_TIMEOUT, E_PROXY_HEADER_TRUNCATED for an end or error before it is whole.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<DecodedProxyV2> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.off("error", onEnd);
      socket.pause();
    };
    const fail = (error: SlowPathError) => {
      cleanup();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const status = proxyHeaderStatus(buffered);
      if (status === "more") return;
      if (status === "bad") {
        fail(new SlowPathError("E_PROXY_HEADER_MISSING", missing(buffered)));
        return;
      }
      cleanup();
      const rest = buffered.subarray(status.headerLength);
      if (rest.length > 0) socket.unshift(rest);
      resolve(status);
    };
    const onEnd = () =>
      fail(
        new SlowPathError(
          "E_PROXY_HEADER_TRUNCATED",
          `connection ended after ${buffered.length} bytes, before its PROXY v2 header was complete`,
        ),
      );
    const timer = setTimeout(
      () =>
        fail(
          new SlowPathError(
            "E_PROXY_HEADER_TIMEOUT",
            `no complete PROXY v2 header within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onEnd);
    socket.resume();
  });
}

function missing(bytes: Buffer): string {
  const signed = bytes.subarray(0, PROXY_V2_SIGNATURE.length).equals(PROXY_V2_SIGNATURE);
  return signed
    ? `unsupported PROXY v2 header (version/command 0x${hex(bytes[12])}, family 0x${hex(bytes[13])}): the slow path takes TCP over IPv4 or IPv6 from HAProxy`
    : "the connection did not start with a PROXY v2 header: the slow path takes HAProxy's connections only";
}

const hex = (byte: number | undefined): string => (byte ?? 0).toString(16).padStart(2, "0");

/**
 * Listens on the Unix socket `path`, owner only (HAProxy runs as the gateway's user), replacing
 * a socket left there; any other file there is an error.
 *
 * Bound under a name of its own, made 0600, then renamed over `path`: nobody can connect before
 * the mode is set, and the socket is swapped in one step. It also keeps hand-overs whole: a
 * closing listener unlinks the name it was bound to (libuv), which is its own temporary name,
 * long gone, and never the newer generation's socket at `path`.
 */
export async function listenOnPath(server: Server, path: string, backlog = 4096): Promise<void> {
  const stat = await lstat(path).catch(() => undefined);
  if (stat !== undefined && !stat.isSocket()) {
    throw new SlowPathError("E_SLOW_PATH_SOCKET", `${path} exists and is not a socket`);
  }
  const bound = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path: bound, backlog }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  try {
    await chmod(bound, 0o600);
    await rename(bound, path);
  } catch (error) {
    await new Promise((resolve) => server.close(resolve));
    throw new SlowPathError("E_SLOW_PATH_SOCKET", `${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Told a custom domain's TXT answer (`name` lowercase, no trailing dot) each time one routes a
 * connection, with how much longer the answer is cached (`ttlMs` > 0): the HAProxy engine puts
 * it in its custom-domain map for that long, so the domain's next connections skip the slow
 * path, and a changed record is looked up again once it expires. Must not throw.
 */
export type CustomDomainHook = (
  name: string,
  answer: { readonly appId: string; readonly port: number; readonly ttlMs: number },
) => void;

/** Calls `hook` for an answer still cached (one with TTL 0 would expire at once). */
export function announceCustomDomain(
  hook: CustomDomainHook,
  address: TimedAppAddress,
  log: Logger,
): void {
  if (address.ttlMs <= 0) return;
  const { name, appId, port, ttlMs } = address;
  try {
    hook(name, { appId, port, ttlMs });
  } catch (error) {
    // The connection is routed already: a failed install only keeps the domain on the slow path.
    log.error({ err: error, name }, "custom domain hook failed");
  }
}
