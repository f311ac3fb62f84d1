/**
 * TLS termination for the :443 listener (ARCHITECTURE.md "Request path"). The gateway has already
 * read the ClientHello from the plain socket to route by SNI; `terminate` replays those bytes
 * into a server-side TLSSocket (`unshift` on the paused socket; Node feeds a socket's buffered
 * bytes to the TLS layer before it reads from the handle), so the native TCP handle is wrapped
 * directly, with no JS stream in between. The policy lives in `tls-options.ts`.
 *
 * The certificate and key are files. A reload (file change seen by polling, or `reload()`,
 * which the gateway wires to SIGHUP) checks the new pair before it swaps the secure context:
 * new connections get the new certificate, open ones keep theirs; a bad pair keeps the old.
 */
import type { Socket } from "node:net";
import tls from "node:tls";
import { GatewayError } from "../errors.js";
import { StampPoller, stampOf } from "./file-stamp.js";
import {
  type AlpnMode,
  alpnFor,
  contextOptions,
  GROUPS,
  keyGroups,
  offeredAlpn,
  TicketKeyRing,
} from "./tls-options.js";
import { type CertInfo, readPair } from "../certs/pair.js";

export type { AlpnMode, CertInfo };

export type TerminateErrorCode =
  /** The certificate or key file is unreadable, unparsable, mismatched or expired. */
  | "E_CERT_LOAD"
  /** The handshake failed (protocol, cipher, alert, bad bytes) or the peer closed during it. */
  | "E_TLS_HANDSHAKE"
  /** The handshake did not complete within `handshakeTimeoutMs`. */
  | "E_TLS_TIMEOUT";

export class TerminateError extends GatewayError<TerminateErrorCode> {
  constructor(code: TerminateErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "TerminateError";
  }
}

export type TerminatorLog = (
  level: "info" | "warn" | "error",
  msg: string,
  fields?: object,
) => void;

export interface TerminatorOptions {
  /** PEM certificate, leaf first, then any intermediates. */
  certFile: string;
  /** PEM private key of the leaf. */
  keyFile: string;
  /** Bounds the whole handshake, from `terminate()` to the client's Finished. */
  handshakeTimeoutMs: number;
  /** Session ticket key rotation period, also the session lifetime. @default 43_200_000 (12 h) */
  ticketRotationMs?: number;
  log?: TerminatorLog;
  /** Poll the two files and reload when either changes. @default true */
  watch?: boolean;
  /** Poll interval, also the quiet time after a change before reloading. @default 2000 */
  watchIntervalMs?: number;
  /**
   * Ticket keys owned elsewhere (proxy workers share the primary's, so a ticket from one
   * worker resumes on another): the owner rotates them and calls `ticketKeysChanged()`.
   * @default a ring of this terminator's own, rotated every `ticketRotationMs`
   */
  ticketKeys?: TicketKeyRing;
}

export type ReloadTrigger = "request" | "file change";

export type ReloadResult = { ok: true; cert: CertInfo } | { ok: false; error: string };

const DEFAULT_ROTATION_MS = 12 * 3600 * 1000;
const MAX_TIMER_MS = 2 ** 31 - 1;

const reasonOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

interface Loaded {
  readonly cert: string;
  readonly key: string;
  readonly info: CertInfo;
  readonly context: tls.SecureContext;
  /** False when Node lacks the ticket key hook: then one key sits in the context's `ticketKeys`. */
  readonly hooked: boolean;
}

/** Where the secure contexts get their policy and ticket keys from. */
interface ContextSource {
  readonly ring: TicketKeyRing;
  readonly rotationMs: number;
}

function buildContext(
  src: ContextSource,
  cert: string,
  key: string,
): Pick<Loaded, "context" | "hooked"> {
  const options = contextOptions(src.rotationMs, src.ring.currentKeys());
  const context = tls.createSecureContext({ ...options, cert, key });
  return { context, hooked: src.ring.attach(context) };
}

/** Reads, checks and builds; throws an Error whose message says what is wrong. */
async function loadPair(src: ContextSource, opts: TerminatorOptions): Promise<Loaded> {
  const { cert, key, info, notBefore } = await readPair(opts.certFile, opts.keyFile);
  if (notBefore.getTime() > Date.now()) {
    // Accepted: clients judge validity by their own clocks, and ours may be the one behind.
    opts.log?.("warn", "certificate not valid yet by our clock", {
      serial: info.serial,
      notBefore,
    });
  }
  return { cert, key, info, ...buildContext(src, cert, key) };
}

export class TlsTerminator {
  readonly #opts: TerminatorOptions;
  readonly #src: ContextSource;
  #loaded: Loaded;
  #reloads: Promise<unknown> = Promise.resolve();
  readonly #rotation: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  readonly #poller: StampPoller | undefined;

  private constructor(opts: TerminatorOptions, src: ContextSource, loaded: Loaded, stamp: string) {
    this.#opts = opts;
    this.#src = src;
    this.#loaded = loaded;
    this.#rotation = opts.ticketKeys
      ? undefined
      : setInterval(() => this.rotateTicketKeys(), src.rotationMs).unref();
    if (opts.watch ?? true) {
      const interval = opts.watchIntervalMs ?? 2000;
      this.#poller = new StampPoller(this.#files(), stamp, interval, () => {
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => void this.reload("file change"), interval).unref();
      });
    }
  }

  /** Loads the certificate and key; rejects with E_CERT_LOAD when they are not usable. */
  static async create(opts: TerminatorOptions): Promise<TlsTerminator> {
    const rotationMs = opts.ticketRotationMs ?? DEFAULT_ROTATION_MS;
    if (!Number.isInteger(rotationMs) || rotationMs < 1 || rotationMs > MAX_TIMER_MS) {
      throw new RangeError(`ticketRotationMs must be an integer in 1..${MAX_TIMER_MS}`);
    }
    if (!(opts.handshakeTimeoutMs > 0)) throw new RangeError("handshakeTimeoutMs must be > 0");
    const src: ContextSource = { ring: opts.ticketKeys ?? new TicketKeyRing(), rotationMs };
    if (keyGroups() !== GROUPS) {
      opts.log?.("warn", "this node's OpenSSL has no X25519MLKEM768: classic key agreement only", {
        openssl: process.versions.openssl,
        groups: keyGroups(),
      });
    }
    try {
      const stamp = await stampOf([opts.certFile, opts.keyFile]);
      return new TlsTerminator(opts, src, await loadPair(src, opts), stamp);
    } catch (e) {
      const where = `${opts.certFile}, ${opts.keyFile}`;
      throw new TerminateError("E_CERT_LOAD", `${where}: ${reasonOf(e)}`, { cause: e });
    }
  }

  /**
   * Runs the server side of the TLS handshake on `socket`, whose first bytes `initial` the
   * caller has already read (and whose own listeners it has removed); `offered` is the ALPN list
   * of that ClientHello when the caller parsed it already. Resolves with the TLS
   * socket once the handshake is complete; the caller then owns it. On a failed handshake or
   * after `handshakeTimeoutMs`, destroys the sockets and rejects with a TerminateError.
   *
   * From here on, close the connection through the TLS socket only. Both objects share one
   * native handle: destroying the TLS socket closes `socket` as well, and `socket` closing
   * first ends the TLS socket. But `socket.destroy()` followed by `tls.destroy()` before
   * `socket` has emitted 'close' (same tick or next tick) makes Node 20.20 write to the closed
   * descriptor, which the next accepted connection may already own: we saw that connection's
   * handshake fail with garbage bytes, and segfaults.
   */
  terminate(
    socket: Socket,
    initial: Buffer,
    mode: AlpnMode,
    offered: readonly string[] | undefined = offeredAlpn(initial),
  ): Promise<tls.TLSSocket> {
    const alpn = alpnFor(mode, offered);
    const context = this.#loaded.context;
    const timeoutMs = this.#opts.handshakeTimeoutMs;
    return new Promise((resolve, reject) => {
      if (socket.destroyed) {
        reject(new TerminateError("E_TLS_HANDSHAKE", "socket closed before the TLS handshake"));
        return;
      }
      socket.pause(); // a flowing socket would hand the replayed bytes to nobody
      if (initial.length > 0) socket.unshift(initial);
      let secure: tls.TLSSocket;
      try {
        secure = new tls.TLSSocket(socket, {
          isServer: true,
          secureContext: context,
          ...(alpn.length > 0 ? { ALPNProtocols: alpn } : {}),
        });
      } catch (e) {
        socket.destroy();
        reject(new TerminateError("E_TLS_HANDSHAKE", reasonOf(e), { cause: e }));
        return;
      }
      const timer = setTimeout(() => {
        fail(new TerminateError("E_TLS_TIMEOUT", `TLS handshake not done after ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = (): void => {
        clearTimeout(timer);
        secure.off("secure", onSecure);
        secure.off("error", onError);
        secure.off("close", onClose);
      };
      const fail = (error: TerminateError): void => {
        settle();
        secure.on("error", () => {}); // late errors of a socket we already gave up on
        // Destroying `secure` closes the shared handle, so `socket` closes too. If the caller
        // destroyed `socket` already, Node ends `secure` on its 'close'; touching it earlier
        // is the hazard described above.
        if (!socket.destroyed) secure.destroy();
        reject(error);
      };
      const onSecure = (): void => {
        settle();
        resolve(secure);
      };
      const onError = (e: Error & { code?: string }): void => {
        const why = e.code ?? reasonOf(e).split("\n")[0];
        fail(new TerminateError("E_TLS_HANDSHAKE", `TLS handshake failed: ${why}`, { cause: e }));
      };
      const onClose = (): void => {
        fail(new TerminateError("E_TLS_HANDSHAKE", "connection closed during the TLS handshake"));
      };
      secure.once("secure", onSecure);
      secure.once("error", onError);
      secure.once("close", onClose);
    });
  }

  /**
   * Re-reads both files and swaps them in if they are good; otherwise keeps the current pair
   * and logs why. Calls run one after another. `trigger` goes into the log line: "file change"
   * when the watch saw one, "request" for a signal, a renewal or the admin API.
   */
  reload(trigger: ReloadTrigger = "request"): Promise<ReloadResult> {
    const result = this.#reloads.then(() => this.#reloadNow(trigger));
    this.#reloads = result;
    return result;
  }

  current(): CertInfo {
    return this.#loaded.info;
  }

  /**
   * Starts a new ticket key; the previous one stays accepted for one more period. Runs every
   * `ticketRotationMs` unless the keys are owned elsewhere (`ticketKeys`); public for tests.
   */
  rotateTicketKeys(): void {
    this.#src.ring.rotate();
    this.ticketKeysChanged();
  }

  /** Takes up the ring's keys after its owner rotated or loaded them. */
  ticketKeysChanged(): void {
    const loaded = this.#loaded;
    if (!loaded.hooked) {
      this.#loaded = { ...loaded, ...buildContext(this.#src, loaded.cert, loaded.key) };
    }
  }

  /** Stops the file watchers and the rotation timer. Open connections are not touched. */
  close(): void {
    clearInterval(this.#rotation);
    clearTimeout(this.#debounce);
    this.#poller?.stop();
  }

  async #reloadNow(trigger: ReloadTrigger): Promise<ReloadResult> {
    const { certFile, keyFile, log } = this.#opts;
    try {
      // Stamped before the read: a change after it is seen by the next poll.
      this.#poller?.seen(await stampOf(this.#files()));
      this.#loaded = await loadPair(this.#src, this.#opts);
      const { serial, notAfter, fingerprint256 } = this.#loaded.info;
      log?.("info", "certificate loaded", { certFile, serial, notAfter, fingerprint256, trigger });
      return { ok: true, cert: this.#loaded.info };
    } catch (e) {
      const error = reasonOf(e);
      log?.("error", "certificate reload rejected, keeping the current one", {
        certFile,
        keyFile,
        trigger,
        error,
        serial: this.#loaded.info.serial,
      });
      return { ok: false, error };
    }
  }

  #files(): [string, string] {
    return [this.#opts.certFile, this.#opts.keyFile];
  }
}
