/**
 * The TLS policy of the terminating :443 listener (ARCHITECTURE.md "Request path"): versions,
 * AEAD-only ciphers, key-exchange groups, no renegotiation, ALPN per route mode, the session
 * ticket keys, and the checks a certificate and key pass before use. Pure values and small pieces
 * with no I/O; `terminate.ts` puts them together.
 */
import { Buffer } from "node:buffer";
import { constants, randomBytes, randomFillSync } from "node:crypto";
import { createSecureContext, type SecureContext, type SecureContextOptions } from "node:tls";
import { parseClientHello } from "./clienthello.js";

export type AlpnMode = "http1" | "h2";

/**
 * TLS 1.3 suites (all AEAD), then for TLS 1.2 only ECDHE with AES-GCM or ChaCha20-Poly1305.
 * Node puts the `TLS_` names into the TLS 1.3 list and the rest into the TLS 1.2 list. The
 * server's order decides (`SERVER_ORDER`, for the groups' sake), except that a client putting
 * ChaCha20-Poly1305 first (one without AES hardware) gets it.
 */
export const CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/**
 * Key agreement, in the server's order. X25519MLKEM768 (hybrid post-quantum, OpenSSL 3.5) first:
 * browsers and OpenSSL 3.5 clients send a key share for it, and a recording of today's traffic
 * stays safe from a future quantum computer. Then X25519, which every other client sends a key
 * share for, then the NIST curves. One list, not OpenSSL 3.5's `/` tuples: a client that sends
 * only an X25519 key share gets X25519 at once rather than a HelloRetryRequest (a round trip)
 * for the hybrid.
 */
export const GROUPS = "X25519MLKEM768:X25519:P-256:P-384";

/**
 * The server's order picks among the key shares a client sent (OpenSSL takes the client's
 * otherwise: a client listing P-256 first got P-256), which also makes it pick the cipher
 * suite; `SSL_OP_PRIORITIZE_CHACHA` gives ChaCha20 back to clients that put it first.
 */
const SERVER_ORDER = constants.SSL_OP_CIPHER_SERVER_PREFERENCE | constants.SSL_OP_PRIORITIZE_CHACHA;

/** GROUPS without the hybrid, for a node whose OpenSSL has no ML-KEM (one linked to 3.0-3.4). */
export const CLASSIC_GROUPS = "X25519:P-256:P-384";

/** GROUPS when this OpenSSL takes the list (`accepts`), else CLASSIC_GROUPS. */
export function pickGroups(accepts: (groups: string) => boolean): string {
  return accepts(GROUPS) ? GROUPS : CLASSIC_GROUPS;
}

let groups: string | undefined;

/** The groups this process's OpenSSL supports, found once by building a context with them. */
export function keyGroups(): string {
  groups ??= pickGroups((list) => {
    try {
      createSecureContext({ ecdhCurve: list });
      return true;
    } catch {
      return false;
    }
  });
  return groups;
}

/** Ties sessions and tickets to this gateway (OpenSSL's sid_ctx, at most 32 bytes). */
export const SESSION_ID_CONTEXT = "cvm-tls-gateway";

/** RFC 8446 §4.6.1: a ticket lifetime never exceeds 7 days. */
const MAX_TICKET_LIFETIME_S = 7 * 24 * 3600;

/**
 * Options for `tls.createSecureContext`, without cert and key. Client-initiated renegotiation
 * (TLS 1.2 only; TLS 1.3 has none) is refused with `SSL_OP_NO_RENEGOTIATION`: OpenSSL answers
 * the renegotiating ClientHello with a no_renegotiation alert and the client gives up. Node's
 * own guard (`tls.CLIENT_RENEG_LIMIT`, 3 per 10 min, then ERR_TLS_SESSION_ATTACK) stays as a
 * backstop; it is process-global, so we leave it alone.
 *
 * A session lives as long as one ticket key period: the previous key stays usable for one more
 * period (see TicketKeyRing), so every ticket can be decrypted for its whole lifetime.
 */
export function contextOptions(ticketRotationMs: number, ticketKeys: Buffer): SecureContextOptions {
  return {
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
    ciphers: CIPHERS,
    ecdhCurve: keyGroups(),
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION | SERVER_ORDER,
    sessionIdContext: SESSION_ID_CONTEXT,
    sessionTimeout: Math.min(
      MAX_TICKET_LIFETIME_S,
      Math.max(1, Math.round(ticketRotationMs / 1000)),
    ),
    ticketKeys,
  };
}

/** The ALPN names in the ClientHello at the start of `initial`; undefined when unreadable. */
export function offeredAlpn(initial: Uint8Array): readonly string[] | undefined {
  try {
    const result = parseClientHello(initial);
    return result.status === "done" ? result.hello.alpn : undefined;
  } catch {
    return undefined; // not a ClientHello: OpenSSL will say why, with its own alert
  }
}

/**
 * The server's ALPN list for one connection. Mode "h2" offers h2 then http/1.1, mode "http1"
 * only http/1.1, so h2 is never selected in http1 mode. Node (20 to 26) answers a ClientHello with
 * no overlap with a fatal no_application_protocol alert, so when the client offers none of our
 * names (e.g. only h2 in http1 mode) we configure no ALPN at all: the handshake completes
 * without an ALPN answer and the client decides whether it can go on. Unreadable input (the
 * caller passed a partial hello) also gets no ALPN rather than a spurious alert.
 */
export function alpnFor(mode: AlpnMode, offered: readonly string[] | undefined): string[] {
  const ours = mode === "h2" ? ["h2", "http/1.1"] : ["http/1.1"];
  return offered === undefined ? [] : ours.filter((p) => offered.includes(p));
}

interface TicketKey {
  readonly name: Buffer;
  readonly hmac: Buffer;
  readonly aes: Buffer;
}

/**
 * Undocumented hook of Node's native SecureContext (`secureContext.context`), present in Node
 * 20 to 26 and used by Node's own test-https-resume-after-renew. OpenSSL's ticket key callback calls
 * `onticketkeycallback(name, iv, encrypt)`, which returns `[result, hmacKey, aesKey]` plus,
 * when encrypting, `name, iv` (16 bytes each; AES-128-CBC and HMAC-SHA256 as Node's own keys).
 * result: 1 = use this key, 2 = decrypted and issue a fresh ticket, 0 = unknown key (full
 * handshake), negative = fatal.
 */
interface NativeTicketHook {
  enableTicketKeyCallback(): void;
  onticketkeycallback(name: Buffer, iv: Buffer, encrypt: boolean): unknown[];
}

function isHookable(native: unknown): native is NativeTicketHook {
  return (
    typeof native === "object" &&
    native !== null &&
    typeof (native as Partial<NativeTicketHook>).enableTicketKeyCallback === "function"
  );
}

const newKey = (): TicketKey => ({
  name: randomBytes(16),
  hmac: randomBytes(16),
  aes: randomBytes(16),
});
const ZERO16 = Buffer.alloc(16);

/** A ticket key as hex: name, HMAC key and AES key, 16 bytes each. */
export interface TicketKeyHex {
  readonly name: string;
  readonly hmac: string;
  readonly aes: string;
}

export interface TicketKeys {
  readonly current: TicketKeyHex;
  readonly previous: TicketKeyHex | undefined;
}

const keyToHex = (k: TicketKey): TicketKeyHex => ({
  name: k.name.toString("hex"),
  hmac: k.hmac.toString("hex"),
  aes: k.aes.toString("hex"),
});

function keyFromHex(k: TicketKeyHex, which: string): TicketKey {
  const part = (hex: string, what: string): Buffer => {
    const b = Buffer.from(hex, "hex");
    if (b.length !== 16)
      throw new RangeError(`${which} ticket key: ${what} is not 16 bytes of hex`);
    return b;
  };
  return { name: part(k.name, "name"), hmac: part(k.hmac, "hmac"), aes: part(k.aes, "aes") };
}

/**
 * Fresh random 16-byte IVs, cut from a pool refilled in one call every 256 IVs, so issuing a
 * ticket costs no random-number call of its own on the handshake path. Each IV is handed out
 * once; OpenSSL copies it before the pool is refilled.
 */
class IvPool {
  #pool = Buffer.alloc(0);
  #at = 0;

  next(): Buffer {
    if (this.#at === this.#pool.length) {
      this.#pool = randomFillSync(Buffer.allocUnsafe(16 * 256));
      this.#at = 0;
    }
    const iv = this.#pool.subarray(this.#at, this.#at + 16);
    this.#at += 16;
    return iv;
  }
}

/**
 * Session ticket encryption keys: tickets are sealed with the current key; tickets sealed with
 * the current or the previous key are accepted, and either one is answered with a fresh ticket.
 * The fresh ticket matters for TLS 1.3: by default Node (OpenSSL) sends no new ticket after a
 * resumed handshake, so clients that use each ticket once get a full handshake every other time
 * (ARCHITECTURE.md "Platform facts"). Node's public `ticketKeys` takes exactly one 48-byte key,
 * with no previous key; when the native hook is missing (a future Node) `attach` returns false
 * and the caller falls back to `currentKeys()` in the context options and a new context at
 * rotation.
 */
export class TicketKeyRing {
  #current: TicketKey = newKey();
  #previous: TicketKey | undefined;
  readonly #ivs = new IvPool();

  rotate(): void {
    this.#previous = this.#current;
    this.#current = newKey();
  }

  /** The current and previous keys, hex, for processes that must accept each other's tickets. */
  export(): TicketKeys {
    return {
      current: keyToHex(this.#current),
      previous: this.#previous && keyToHex(this.#previous),
    };
  }

  /** Takes over keys from `export()` of another ring (the process that rotates them). */
  load(keys: TicketKeys): void {
    this.#current = keyFromHex(keys.current, "current");
    this.#previous =
      keys.previous === undefined ? undefined : keyFromHex(keys.previous, "previous");
  }

  /** The current key in Node's 48-byte `ticketKeys` layout (name, HMAC key, AES key). */
  currentKeys(): Buffer {
    return Buffer.concat([this.#current.name, this.#current.hmac, this.#current.aes]);
  }

  /** Routes `ctx`'s ticket encryption through this ring; false when Node lacks the hook. */
  attach(ctx: SecureContext): boolean {
    const native: unknown = ctx.context;
    if (!isHookable(native)) return false;
    native.onticketkeycallback = (name, _iv, encrypt) => this.#callback(name, encrypt);
    native.enableTicketKeyCallback();
    return true;
  }

  #callback(name: Buffer, encrypt: boolean): unknown[] {
    if (encrypt) {
      const k = this.#current;
      return [1, k.hmac, k.aes, k.name, this.#ivs.next()];
    }
    const k = [this.#current, this.#previous].find((key) => key?.name.equals(name));
    return k === undefined ? [0, ZERO16, ZERO16] : [2, k.hmac, k.aes];
  }
}
