/**
 * The byte bridge between a client and the backend the gateway picked (ARCHITECTURE.md
 * "Request path"), for TLS passthrough (the client is the raw TCP socket) and after
 * termination (a `tls.TLSSocket`).
 *
 * Not `pipe()`/`pipeline()`: `pipe()` leaves a reader paused when the other side closes first,
 * so its own close is never read and its descriptor leaks. Here:
 * - Backpressure: a direction pauses its reader when `write()` returns false and resumes on
 *   `drain`, so a writable holds at most its high-water mark plus one chunk.
 * - Half-close: when one side ends, the other side's writable is ended and the other direction
 *   keeps flowing until it ends too; `shutdownMs` bounds that phase. Both sockets are switched
 *   to `allowHalfOpen` (Node documents the property as settable before `end`), else Node ends a
 *   writable by itself when its peer's FIN arrives and a late reply is lost.
 * - Settles exactly once, with both directions ended and flushed (`closed`), a timeout, a
 *   socket error or close of either side, or the abort signal; then it clears its timer and
 *   destroys both sockets.
 * - One timer per bridge, armed for the nearest deadline (idle, write, shutdown, total). Data
 *   only moves a timestamp; when the timer fires it settles or re-arms for what is left.
 * - No closures per connection: the socket listeners are shared functions that find their
 *   bridge through the socket (`kFlow`). An idle connection holds the bridge, its two flows
 *   and nothing else of ours: closures per listener would be memory on every idle connection.
 *
 * The bridge owns both sockets from the call on: the caller has removed its own `data` and
 * `readable` listeners and hands over any bytes it already read as `initial`.
 */
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { ReusedReads } from "./read-buffers.js";

export interface BridgeTimeouts {
  /** No byte moved either way for this long ends the bridge (`idle`). */
  readonly idleMs: number;
  /** A write that stays un-drained for this long ends the bridge (`write`). */
  readonly writeMs: number;
  /** Bounds the half-closed phase after the first side ends (`shutdown`). */
  readonly shutdownMs: number;
  /** Caps the bridge's life (`total`); `Infinity` for none. */
  readonly totalMs: number;
  /** False switches `idleMs` and `writeMs` off. */
  readonly dataTimeouts: boolean;
}

export type BridgeEnd =
  | "closed"
  | "idle"
  | "write"
  | "shutdown"
  | "total"
  | "client-error"
  | "backend-error"
  | "aborted";

export interface BridgeResult {
  readonly end: BridgeEnd;
  /** Client bytes written to the backend, `initial` included. */
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  /** The socket error behind `client-error`/`backend-error`; absent when the socket closed
   * early without one (destroyed by someone else). */
  readonly error?: Error;
}

export interface BridgeOptions {
  /** Client bytes already read (the buffered ClientHello, a PROXY header): sent first. */
  readonly initial?: Buffer;
  /** Aborting ends the bridge at once with `aborted` (gateway shutdown). */
  readonly signal?: AbortSignal;
  /** The backend socket reads into reused buffers (`raceConnect`'s `reuseReads`). */
  readonly backendReads?: ReusedReads;
}

type Side = "client" | "backend";

/** The flow a socket reads for (its source side), set on both sockets by the bridge. */
const kFlow = Symbol("bridge flow");

type BridgedSocket = Socket & { [kFlow]?: Flow };

/** setTimeout turns longer delays into 1 ms. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** One direction: bytes read from `src` are written to `dst`. */
class Flow {
  bytes = 0;
  /** When `dst.write()` last returned false, until `drain`. */
  blockedSince: number | undefined = undefined;
  /** `src` ended and `dst.end()` was called. */
  ended = false;
  /** `dst` flushed everything after `end()`. */
  flushed = false;
  /** The opposite direction (set once both exist). */
  other!: Flow;

  constructor(
    readonly bridge: Bridge,
    readonly side: Side,
    readonly src: Socket,
    readonly dst: Socket,
  ) {}

  /** Bytes read from `src`: written on, pausing `src` while `dst` is full. */
  read(chunk: Buffer): void {
    this.bytes += chunk.length;
    const b = this.bridge;
    b.lastActivity = performance.now();
    if (!this.dst.write(chunk)) this.block();
  }

  block(): void {
    if (this.blockedSince !== undefined) return;
    this.blockedSince = performance.now();
    this.src.pause();
    this.dst.once("drain", onDrain);
    const b = this.bridge;
    if (b.timeouts.dataTimeouts) b.arm(this.blockedSince + b.timeouts.writeMs);
  }

  end(): void {
    this.ended = true;
    this.dst.end();
    const b = this.bridge;
    if (b.halfClosedAt === undefined) {
      b.halfClosedAt = performance.now();
      b.arm(b.halfClosedAt + b.timeouts.shutdownMs);
    }
  }
}

function flowOf(socket: Socket): Flow {
  return (socket as BridgedSocket)[kFlow] as Flow;
}

// The listeners, shared by every bridge; `this` is the socket that emitted.
function onData(this: Socket, chunk: Buffer): void {
  flowOf(this).read(chunk);
}
function onEnd(this: Socket): void {
  flowOf(this).end();
}
function onError(this: Socket, error: Error): void {
  const f = flowOf(this);
  f.bridge.settle(`${f.side}-error`, error);
}
function onClose(this: Socket): void {
  // a clean close follows 'end' and 'finish'; anything else is an abrupt close
  const reading = flowOf(this);
  if (!(reading.ended && reading.other.flushed)) reading.bridge.settle(`${reading.side}-error`);
}
function onFinish(this: Socket): void {
  const writing = flowOf(this).other;
  writing.flushed = true;
  if (writing.other.flushed) writing.bridge.settle("closed");
}
/** On the destination of a blocked flow: the flow reading the other socket. */
function onDrain(this: Socket): void {
  const f = flowOf(this).other;
  f.blockedSince = undefined;
  const b = f.bridge;
  b.lastActivity = performance.now();
  if (!b.settled) f.src.resume();
}
function releaseReads(this: Socket): void {
  flowOf(this).bridge.backendReads?.release();
}
function onBridgeTimer(b: Bridge): void {
  b.onTimer();
}

class Bridge {
  readonly up: Flow;
  readonly down: Flow;
  readonly start = performance.now();
  lastActivity = this.start;
  halfClosedAt: number | undefined = undefined;
  settled = false;
  #timer: NodeJS.Timeout | undefined = undefined;
  #armedFor = Number.POSITIVE_INFINITY;

  constructor(
    client: Socket,
    backend: Socket,
    readonly timeouts: BridgeTimeouts,
    readonly signal: AbortSignal | undefined,
    readonly backendReads: ReusedReads | undefined,
    readonly resolve: (result: BridgeResult) => void,
  ) {
    this.up = new Flow(this, "client", client, backend);
    this.down = new Flow(this, "backend", backend, client);
    this.up.other = this.down;
    this.down.other = this.up;
  }

  settle(end: BridgeEnd, error?: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.#timer);
    this.signal?.removeEventListener("abort", this);
    this.up.src.destroy();
    this.down.src.destroy();
    const bytes = { bytesToBackend: this.up.bytes, bytesToClient: this.down.bytes };
    this.resolve(error === undefined ? { end, ...bytes } : { end, ...bytes, error });
  }

  /** The abort signal's listener (an EventListener object: no closure). */
  handleEvent(): void {
    this.settle("aborted");
  }

  nextDeadline(): [BridgeEnd, number] {
    const t = this.timeouts;
    let end: BridgeEnd = "total";
    let at = this.start + t.totalMs;
    if (this.halfClosedAt !== undefined && this.halfClosedAt + t.shutdownMs < at) {
      end = "shutdown";
      at = this.halfClosedAt + t.shutdownMs;
    }
    if (t.dataTimeouts) {
      if (this.lastActivity + t.idleMs < at) {
        end = "idle";
        at = this.lastActivity + t.idleMs;
      }
      for (const f of [this.up, this.down]) {
        if (f.blockedSince !== undefined && f.blockedSince + t.writeMs < at) {
          end = "write";
          at = f.blockedSince + t.writeMs;
        }
      }
    }
    return [end, at];
  }

  arm(at: number): void {
    if (this.settled || !(at < this.#armedFor)) return; // also skips NaN and Infinity
    clearTimeout(this.#timer);
    this.#armedFor = at;
    const delay = Math.min(MAX_DELAY_MS, Math.max(1, Math.ceil(at - performance.now())));
    this.#timer = setTimeout(onBridgeTimer, delay, this).unref();
  }

  onTimer(): void {
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    const [end, at] = this.nextDeadline();
    if (at <= performance.now()) this.settle(end);
    else this.arm(at);
  }

  run(initial: Buffer | undefined): void {
    const { up, down, signal, backendReads } = this;
    const client = up.src;
    const backend = down.src;
    if (client.destroyed || backend.destroyed) {
      this.settle(client.destroyed ? "client-error" : "backend-error");
      return;
    }
    if (signal?.aborted) {
      this.settle("aborted");
      return;
    }
    signal?.addEventListener("abort", this, { once: true });

    for (const reading of [up, down]) {
      const socket = reading.src as BridgedSocket;
      socket[kFlow] = reading;
      socket.allowHalfOpen = true;
      socket.on("error", onError);
      socket.on("close", onClose);
      if (reading === down && backendReads) {
        backendReads.consume((chunk) => {
          down.read(chunk);
          if (client.writableLength > 0) backendReads.retain(); // queued, not yet written
        });
        socket.once("close", releaseReads);
      } else {
        socket.on("data", onData);
      }
      socket.on("end", onEnd);
      socket.on("finish", onFinish);
    }

    if (initial !== undefined && initial.length > 0) {
      up.bytes += initial.length;
      if (!backend.write(initial)) up.block();
    }
    for (const f of [up, down]) {
      if (f.src.readableEnded) f.end();
      else if (f.blockedSince === undefined) f.src.resume();
    }
    this.arm(this.nextDeadline()[1]);
  }
}

export function bridge(
  client: Socket,
  backend: Socket,
  timeouts: BridgeTimeouts,
  options: BridgeOptions = {},
): Promise<BridgeResult> {
  const { initial, signal, backendReads } = options;
  return new Promise<BridgeResult>((resolve) => {
    new Bridge(client, backend, timeouts, signal, backendReads, resolve).run(initial);
  });
}
