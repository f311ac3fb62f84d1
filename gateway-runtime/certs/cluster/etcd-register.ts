/**
 * A register (../register.ts) on one etcd key: the version is the key's mod revision, so a
 * write is a transaction that succeeds only if nobody wrote the key since it was read. The
 * watch follows the key from when it starts; the client reconnects it after a disconnect and
 * resumes from the last revision it delivered. When etcd itself ends the watch (its history
 * was compacted), it starts again from now and delivers the current value once, so no write
 * is missed for good; the manager's periodic sync reads the key in any case.
 */
import { once } from "node:events";
import type { Etcd3, Watcher } from "etcd3";
import type { Logger } from "../../log/index.js";
import { CertError, reasonOf } from "../errors.js";
import type { RegisterValue } from "../register.js";
import type { SharedRegister } from "../region.js";

/** Runs an etcd call, turning its failure into E_CERT_CLUSTER with what was being done. */
export async function etcdCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof CertError) throw e;
    throw new CertError("E_CERT_CLUSTER", `${what}: ${reasonOf(e)}`, { cause: e });
  }
}

export class EtcdRegister implements SharedRegister {
  readonly name: string;

  constructor(
    readonly client: Etcd3,
    readonly key: string,
    readonly options: { readonly timeoutMs: number; readonly log: Logger },
  ) {
    this.name = `etcd key ${key}`;
  }

  async read(): Promise<RegisterValue | undefined> {
    const res = await etcdCall(`reading ${this.name}`, () => this.client.get(this.key).exec());
    const kv = res.kvs[0];
    return kv && { text: kv.value.toString(), version: Number(kv.mod_revision) };
  }

  async write(text: string, version: number): Promise<boolean> {
    const res = await etcdCall(`writing ${this.name}`, () =>
      this.client
        .if(this.key, "Mod", "==", version)
        .then(this.client.put(this.key).value(text))
        .commit(),
    );
    return res.succeeded;
  }

  async watch(fn: (text: string) => void): Promise<() => Promise<void>> {
    const { log, timeoutMs } = this.options;
    let current: Watcher | undefined;
    let closed = false;
    const start = (): Watcher => {
      const w = this.client.watch().key(this.key).watcher();
      current = w;
      w.on("put", (kv) => {
        if (current === w) fn(kv.value.toString());
      });
      w.on("error", (err) => {
        if (closed || current !== w) return;
        log.warn({ err: reasonOf(err), key: this.key }, "etcd ended the watch; watching again");
        w.removeAllListeners("put");
        setTimeout(() => {
          if (closed) return;
          start();
          this.read().then(
            (v) => v && fn(v.text),
            (e: unknown) => log.warn({ err: reasonOf(e) }, "could not read after the watch ended"),
          );
        }, 1000).unref();
      });
      return w;
    };
    const first = start();
    // Waits (bounded) for etcd to confirm the watch, so writes from now on are seen; when etcd
    // is away the watcher goes on trying and the caller's sync covers the gap.
    await once(first, "connected", { signal: AbortSignal.timeout(timeoutMs) }).catch(() => {
      log.warn({ key: this.key }, "the etcd watch is not confirmed yet; it goes on trying");
    });
    return async () => {
      closed = true;
      const w = current;
      current = undefined;
      w?.removeAllListeners("put");
      await Promise.race([
        w?.cancel().catch(() => undefined),
        new Promise((r) => setTimeout(r, timeoutMs).unref()),
      ]);
    };
  }
}
