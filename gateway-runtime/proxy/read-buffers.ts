/**
 * Reads of a backend socket into reused buffers (net's `onread`), for passthrough. By default
 * Node allocates a fresh 64 KiB buffer for every read, and the external memory that piles up
 * makes V8 collect garbage on a busy download (BENCHMARKS.md, (d)). Here a read lands in the
 * buffer of the previous one when the bytes of that one are gone: written to the client
 * synchronously, which is the common case on a socket that keeps up.
 *
 * The consumer says when a chunk is still referenced (queued in a writable) with `retain()`;
 * the next read then gets another buffer, and the retained one is left to the GC.
 *
 * A socket's own 4 KiB buffer comes from a second pool and goes back to it when the socket
 * closes, so a new connection per request adds no external memory for V8 to collect.
 *
 * Memory: a socket always holds the buffer its next read lands in. After a read that filled
 * its buffer that is a 64 KiB one borrowed from a shared pool (more is likely waiting); after
 * any shorter read it is a 4 KiB one, the large one going back to the pool (the connection may
 * now sit idle). So an idle connection holds 4 KiB, or 64 KiB in the rare case that its last
 * read ended exactly on a buffer's end. Keeping the large buffer after a short read too would
 * save a little CPU in (d), but leave 64 KiB on every connection idle after a mid-sized reply.
 */
export const SMALL_READ = 4096;
export const LARGE_READ = 65_536;
const POOL_LIMIT = 64;
/** 4 MiB of small buffers at most. */
const SMALL_POOL_LIMIT = 1024;

const pool: Buffer[] = [];
const smallPool: Buffer[] = [];

function large(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(LARGE_READ);
}

function small(): Buffer {
  return smallPool.pop() ?? Buffer.allocUnsafeSlow(SMALL_READ);
}

/** Only for buffers nothing else references any more. */
function giveBack(buffer: Buffer): void {
  if (buffer.length === LARGE_READ) {
    if (pool.length < POOL_LIMIT) pool.push(buffer);
  } else if (smallPool.length < SMALL_POOL_LIMIT) {
    smallPool.push(buffer);
  }
}

/** Large buffers waiting in the shared pool (tests). */
export function pooledReadBuffers(): number {
  return pool.length;
}

/** Small buffers waiting in their pool (tests). */
export function pooledSmallBuffers(): number {
  return smallPool.length;
}

export class ReusedReads {
  /** This socket's own 4 KiB buffer, kept while a large one is borrowed. */
  #small: Buffer = small();
  #buffer: Buffer = this.#small;
  #last = 0;
  #retained = false;
  #closed = false;
  #consumer: ((chunk: Buffer) => void) | undefined;
  /** Copies of what arrived before a consumer was attached. */
  #early: Buffer[] = [];

  /** Pass as `onread` to `net.connect`. */
  readonly onread = {
    buffer: (): Buffer => this.#next(),
    callback: (n: number, buffer: Buffer): boolean => {
      this.#last = n;
      const chunk = n === buffer.length ? buffer : buffer.subarray(0, n);
      if (this.#consumer) this.#consumer(chunk);
      else this.#early.push(Buffer.from(chunk));
      return true; // the consumer pauses the socket itself when its writable is full
    },
  };

  /**
   * Hands every read to `consumer`, first those that arrived before. The chunk is valid until
   * the consumer returns, unless it calls `retain()`.
   */
  consume(consumer: (chunk: Buffer) => void): void {
    this.#consumer = consumer;
    const early = this.#early;
    this.#early = [];
    for (const chunk of early) consumer(chunk);
  }

  /** The chunk just handed over is still referenced: the next read must not overwrite it. */
  retain(): void {
    this.#retained = true;
  }

  /**
   * The socket is closed: its buffers go back to their pools, except one a queued write still
   * holds (retained, and no read since that replaced it).
   */
  release(): void {
    if (this.#closed) return;
    this.#closed = true;
    const held = this.#retained ? this.#buffer : undefined;
    if (this.#buffer !== this.#small && this.#buffer !== held) giveBack(this.#buffer);
    if (this.#small !== held) giveBack(this.#small);
  }

  #next(): Buffer {
    const current = this.#buffer;
    const full = this.#last === current.length;
    if (this.#retained) {
      // A write still holds `current`: it is dropped, never reused or pooled.
      this.#retained = false;
      if (current === this.#small) this.#small = small();
      this.#buffer = full ? large() : this.#small;
    } else if (full && current === this.#small) {
      this.#buffer = large();
    } else if (!full && current !== this.#small) {
      giveBack(current);
      this.#buffer = this.#small;
    }
    return this.#buffer;
  }
}
