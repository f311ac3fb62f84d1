/**
 * A host's copy of the keys under one etcd prefix (the region's nodes, their statuses): read
 * whole, then followed by a watch from the revision read, as the registrations' view is
 * (registry/etcd-store.ts). etcd3 resumes a lost watch from its last revision by itself; a watch
 * etcd cancels (its history compacted) is followed by a fresh read. While etcd is away the copy
 * stays as it was last seen.
 */
import { once } from "node:events";
import type { Etcd3, Watcher } from "etcd3";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";

export class PrefixMirror {
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #log: Logger | undefined;
  /** Key (without the prefix) → value. */
  #entries = new Map<string, string>();
  #watcher: Watcher | undefined;
  #closed = false;
  readonly #listeners = new Set<() => void>();

  private constructor(client: Etcd3, prefix: string, timeoutMs: number, log?: Logger) {
    this.#client = client;
    this.#prefix = prefix;
    this.#timeoutMs = timeoutMs;
    this.#log = log;
  }

  static async open(
    client: Etcd3,
    prefix: string,
    timeoutMs: number,
    log?: Logger,
  ): Promise<PrefixMirror> {
    const mirror = new PrefixMirror(client, prefix, timeoutMs, log);
    await mirror.#reload();
    return mirror;
  }

  get entries(): ReadonlyMap<string, string> {
    return this.#entries;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (!watcher) return;
    watcher.removeAllListeners();
    const bound = new Promise((resolve) => setTimeout(resolve, this.#timeoutMs).unref());
    await Promise.race([watcher.cancel().catch(() => undefined), bound]);
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }

  async #reload(): Promise<void> {
    let res: Awaited<ReturnType<Etcd3["kv"]["range"]>>;
    try {
      const key = Buffer.from(this.#prefix);
      const end = Buffer.from(key);
      end[end.length - 1] = (end.at(-1) as number) + 1;
      res = await this.#client.kv.range({ key, range_end: end });
    } catch (cause) {
      throw new GatewayError(
        "E_CLUSTER_UNAVAILABLE",
        `etcd did not answer (${(cause as Error).message})`,
        { cause },
      );
    }
    const entries = new Map<string, string>();
    for (const kv of res.kvs)
      entries.set(kv.key.subarray(this.#prefix.length).toString(), kv.value.toString());
    this.#entries = entries;
    this.#changed();
    await this.#watch(Number(res.header.revision));
  }

  async #watch(after: number): Promise<void> {
    if (this.#closed) return;
    const old = this.#watcher;
    old?.removeAllListeners();
    old?.cancel().catch(() => undefined);
    const watcher = this.#client
      .watch()
      .prefix(this.#prefix)
      .startRevision(String(after + 1))
      .watcher();
    this.#watcher = watcher;
    watcher.on("data", (res) => {
      const next = new Map(this.#entries);
      for (const e of res.events) {
        const key = e.kv.key.subarray(this.#prefix.length).toString();
        if (e.type === "Delete") next.delete(key);
        else next.set(key, e.kv.value.toString());
      }
      this.#entries = next;
      this.#changed();
    });
    watcher.on("error", (err) => {
      if (this.#closed || this.#watcher !== watcher) return;
      this.#log?.warn({ err, prefix: this.#prefix }, "etcd watch cancelled; reading again");
      this.#watcher = undefined;
      watcher.removeAllListeners("data");
      this.#reloadUntilDone();
    });
    try {
      await once(watcher, "connected", { signal: AbortSignal.timeout(this.#timeoutMs) });
    } catch (cause) {
      throw new GatewayError("E_CLUSTER_UNAVAILABLE", `etcd watch of ${this.#prefix} not up`, {
        cause,
      });
    }
  }

  #reloadUntilDone(): void {
    this.#reload().catch((err: unknown) => {
      if (this.#closed) return;
      this.#log?.warn({ err, prefix: this.#prefix }, "reading from etcd failed; trying again");
      setTimeout(() => this.#reloadUntilDone(), 1000).unref();
    });
  }
}
