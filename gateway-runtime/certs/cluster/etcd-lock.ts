/**
 * The renewal lock of a region (`core.cluster`): an etcd key created only if it does not exist
 * (create revision 0), attached to a lease this host keeps alive while it holds the lock. A
 * holder that crashes or is cut off stops the keepalives, and etcd deletes the key when the
 * lease's TTL runs out, so the lock frees itself; the TTL is short (seconds) because it only has
 * to outlive the keepalives' hiccups, not the renewal, which the keepalives carry. A holder told
 * its lease is gone gets its handle's `lost` signal, which aborts its renewal: another host may
 * hold the lock by then. Release deletes the key in a transaction only if it is still on our
 * lease, then revokes the lease.
 */
import type { Etcd3 } from "etcd3";
import type { Logger } from "../../log/index.js";
import { CertError, reasonOf } from "../errors.js";
import type { LockHandle, RenewalLock } from "../lock.js";
import { etcdCall } from "./etcd-register.js";

export interface EtcdLockOptions {
  readonly client: Etcd3;
  readonly key: string;
  /** This host's name, written into the key for whoever looks. */
  readonly node: string;
  /** The lease's TTL, seconds (etcd's minimum is about 1). */
  readonly ttlSeconds: number;
  readonly log: Logger;
  readonly now?: () => number;
}

export class EtcdLock implements RenewalLock {
  readonly #o: EtcdLockOptions;

  constructor(options: EtcdLockOptions) {
    this.#o = options;
  }

  async tryAcquire(): Promise<LockHandle | undefined> {
    const { client, key, node, log } = this.#o;
    // A read first: a held lock (the common case while another host renews) costs no lease.
    const holder = await etcdCall("reading the renewal lock", () => client.get(key).string());
    if (holder !== null) {
      log.debug({ holder }, "the region's renewal lock is held");
      return undefined;
    }
    const lease = client.lease(this.#o.ttlSeconds);
    const lost = new AbortController();
    lease.on("lost", (err) => {
      log.warn({ err: reasonOf(err) }, "lost the region's renewal lock (etcd lease gone)");
      lost.abort(new CertError("E_CERT_CLUSTER", `lost the renewal lock: ${reasonOf(err)}`));
    });
    const at = (this.#o.now ?? Date.now)();
    let id: string;
    try {
      id = await etcdCall("granting the lock's lease", () => lease.grant());
      const res = await etcdCall("taking the renewal lock", () =>
        client
          .if(key, "Create", "==", 0)
          .then(client.put(key).value(JSON.stringify({ node, at })).lease(id))
          .commit(),
      );
      if (!res.succeeded) {
        await lease.revoke().catch(() => undefined);
        return undefined;
      }
    } catch (e) {
      await lease.revoke().catch(() => undefined);
      throw e;
    }
    return {
      lost: lost.signal,
      release: async () => {
        try {
          await etcdCall("releasing the renewal lock", () =>
            client.if(key, "Lease", "==", id).then(client.delete().key(key)).commit(),
          );
        } finally {
          await lease.revoke().catch(() => undefined);
        }
      },
    };
  }
}
