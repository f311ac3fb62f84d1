/**
 * Only one node renews at a time. `RenewalLock` is what the manager needs; `FileLock` is the
 * single-host (or shared-filesystem) implementation: a lock file created with O_EXCL holding
 * the owner's pid, host, a random token and the time. A lock is stale when its pid is gone (same
 * host) or it is older than `staleMs` (set above renew_timeout, so a live holder's run has
 * ended by then). Breaking a stale lock takes a breakers' guard file, then renames the lock
 * away and checks it is still the one judged stale, so two breakers never both win; release removes the file only if our token is
 * still in it. `cluster/etcd-lock.ts` implements the same interface for a region.
 */
import { randomBytes } from "node:crypto";
import { link, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";

export interface LockHandle {
  release(): Promise<void>;
  /** Aborted when the lock is lost while held (etcd's lease ran out); the holder stops. */
  readonly lost?: AbortSignal;
}

export interface RenewalLock {
  /** The lock if it is free now, else undefined (never waits). */
  tryAcquire(): Promise<LockHandle | undefined>;
}

interface LockContent {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
  readonly at: number;
}

export interface FileLockOptions {
  /** A lock older than this is stale whatever its pid. */
  readonly staleMs: number;
  /** For tests: whether `pid` is alive. @default process.kill(pid, 0) */
  readonly isAlive?: (pid: number) => boolean;
  readonly now?: () => number;
}

/** How long an unreadable lock file may be in the middle of being written. */
const TORN_GRACE_MS = 5000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function parse(text: string): LockContent | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockContent>;
    if (typeof v.pid === "number" && typeof v.token === "string" && typeof v.at === "number") {
      return { pid: v.pid, host: String(v.host ?? ""), token: v.token, at: v.at };
    }
  } catch {
    // an empty or torn file: the writer crashed between create and write
  }
  return undefined;
}

export class FileLock implements RenewalLock {
  readonly path: string;
  readonly #opts: FileLockOptions;

  constructor(path: string, opts: FileLockOptions) {
    this.path = path;
    this.#opts = opts;
  }

  async tryAcquire(): Promise<LockHandle | undefined> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const token = randomBytes(12).toString("hex");
      if (await this.#create(token)) return { release: () => this.#release(token) };
      if (!(await this.#breakIfStale())) return undefined;
    }
    return undefined;
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }

  async #create(token: string): Promise<boolean> {
    const content: LockContent = { pid: process.pid, host: hostname(), token, at: this.#now() };
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(this.path, "wx", 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e;
    }
    try {
      await handle.writeFile(JSON.stringify(content));
      await handle.sync();
    } finally {
      await handle.close();
    }
    return true;
  }

  async #isStale(c: LockContent | undefined): Promise<boolean> {
    if (c === undefined) {
      // Unreadable: its writer died between create and write, or is writing right now.
      const st = await stat(this.path).catch(() => undefined);
      return st !== undefined && this.#now() - st.mtimeMs > TORN_GRACE_MS;
    }
    if (this.#now() - c.at > this.#opts.staleMs) return true;
    const alive = this.#opts.isAlive ?? pidAlive;
    return c.host === hostname() && !alive(c.pid);
  }

  /**
   * True when a stale lock was removed (the caller tries again). Breakers take `<lock>.break`
   * (O_EXCL) first and judge the lock again under it: without it, a breaker that read a stale
   * lock could move aside the live one another breaker had just made, and while it put it back
   * the path was empty for a third to take (two holders). A guard left by a crashed breaker is
   * removed after TORN_GRACE_MS.
   */
  async #breakIfStale(): Promise<boolean> {
    const guard = `${this.path}.break`;
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(guard, "wx", 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const st = await stat(guard).catch(() => undefined);
      if (st !== undefined && this.#now() - st.mtimeMs > TORN_GRACE_MS)
        await unlink(guard).catch(() => undefined);
      return false; // another breaker is at it
    }
    await handle.close();
    try {
      return await this.#breakGuarded();
    } finally {
      await unlink(guard).catch(() => undefined);
    }
  }

  async #breakGuarded(): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "ENOENT"; // released meanwhile: try again
    }
    const seen = parse(text);
    if (!(await this.#isStale(seen))) return false;
    const aside = join(
      dirname(this.path),
      `${basename(this.path)}.${randomBytes(4).toString("hex")}.stale`,
    );
    try {
      await rename(this.path, aside);
    } catch {
      return false; // released first
    }
    const moved = await readFile(aside, "utf8").catch(() => "");
    if (moved !== text) {
      // Its holder released it and a new one was taken after our read: put that one back
      // unless a newer one exists already.
      await link(aside, this.path).catch(() => undefined);
      await unlink(aside).catch(() => undefined);
      return false;
    }
    await unlink(aside).catch(() => undefined);
    return true;
  }

  async #release(token: string): Promise<void> {
    const text = await readFile(this.path, "utf8").catch(() => "");
    if (parse(text)?.token === token) await unlink(this.path).catch(() => undefined);
  }
}
