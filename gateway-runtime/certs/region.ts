/**
 * One certificate per region (`core.cluster`): the hosts share the pair through a register
 * (an etcd key, `cluster/`). The host that renews publishes its new pair there; every host
 * follows the register and takes a pair that is newer than its own into its work directory
 * through the same atomic live swap as a renewal (store.ts), then tells its listeners.
 *
 * "Newer" is the later notAfter (then the later notBefore), never the later write: a late
 * publish of an older pair (a holder that lost its lock, a host coming back with an old
 * certificate) changes nothing, so the publishes need no fencing by the lock. Two pairs issued
 * in the same second tie (the CA counts validity in seconds): then the register's pair wins,
 * and a pair fresh from the CA replaces the register's, so every host ends on the same one.
 *
 * A pair from the register is checked as fully as one fresh from the CA, and more: the key
 * matches the leaf, the leaf covers the configured names and has not expired, each certificate
 * of the chain is signed by the next, and there is a next (a CA sends its intermediate; a
 * self-made certificate has none). Writing to etcd takes the region's client certificate, so
 * this is against mistakes and a corrupted value more than against a forger with that key.
 */
import type { Logger } from "../log/index.js";
import { CertError, reasonOf } from "./errors.js";
import type { Register } from "./register.js";
import type { CertStore } from "./store.js";
import { type CertificateInfo, splitPemChain, verifyCertificate } from "./verify.js";

/** A register all hosts can follow: each write is seen by every host. */
export interface SharedRegister extends Register {
  /** Calls `fn` with each value written from now on; resolves to the stop once following. */
  watch(fn: (text: string) => void): Promise<() => Promise<void>>;
}

export interface RegionPair {
  readonly certPem: string;
  readonly keyPem: string;
  /** Who published it and when, for logs. */
  readonly node?: string;
  readonly publishedAt?: number;
}

export function encodePair(pair: RegionPair): string {
  return JSON.stringify(pair);
}

/** The pair in a register's text; throws E_CERT_INVALID when it is not one. */
export function decodePair(text: string): RegionPair {
  let v: Partial<RegionPair>;
  try {
    v = JSON.parse(text) as Partial<RegionPair>;
  } catch (e) {
    throw new CertError("E_CERT_INVALID", `the region's pair is not JSON: ${reasonOf(e)}`);
  }
  if (typeof v?.certPem !== "string" || typeof v.keyPem !== "string") {
    throw new CertError("E_CERT_INVALID", "the region's pair lacks certPem or keyPem");
  }
  return {
    certPem: v.certPem,
    keyPem: v.keyPem,
    ...(typeof v.node === "string" ? { node: v.node } : {}),
    ...(typeof v.publishedAt === "number" ? { publishedAt: v.publishedAt } : {}),
  };
}

/** Positive when `a` is newer than `b` (expires later, or as late but issued later), 0 on a tie. */
export function compareValidity(a: CertificateInfo, b: CertificateInfo): number {
  const after = a.notAfter.getTime() - b.notAfter.getTime();
  return after !== 0 ? after : a.notBefore.getTime() - b.notBefore.getTime();
}

/** Whether the region's pair `region` replaces `live`: newer, or a tie with another pair. */
export function shouldTake(region: CertificateInfo, live: CertificateInfo | undefined): boolean {
  if (live === undefined) return true;
  const c = compareValidity(region, live);
  return c > 0 || (c === 0 && region.fingerprint256 !== live.fingerprint256);
}

/** Whether `live` replaces the region's pair: newer, or as new and `fresh` from the CA. */
export function shouldPublish(
  live: CertificateInfo,
  region: CertificateInfo | undefined,
  fresh: boolean,
): boolean {
  if (region === undefined) return true;
  const c = compareValidity(live, region);
  return c > 0 || (c === 0 && fresh && live.fingerprint256 !== region.fingerprint256);
}

/** The checks a pair passes before a host serves it or publishes it (see the top). */
export function checkRegionPair(
  pair: RegionPair,
  names: readonly string[],
  now: number,
): CertificateInfo {
  const info = verifyCertificate(pair.certPem, pair.keyPem, names, now);
  if (splitPemChain(pair.certPem).length < 2) {
    throw new CertError("E_CERT_INVALID", "the chain has no issuer certificate");
  }
  return info;
}

export interface RegionCertificateOptions {
  readonly register: SharedRegister;
  readonly store: CertStore;
  readonly names: readonly string[];
  /** This host's name, written with what it publishes. */
  readonly node: string;
  readonly keepArchives: number;
  readonly log: Logger;
  readonly now: () => number;
  /** Called after a pair from the region went live here. */
  readonly installed: (info: CertificateInfo) => Promise<void>;
}

export class RegionCertificate {
  readonly #o: RegionCertificateOptions;
  /** Takes run one at a time, so two of them never race to the live swap. */
  #queue: Promise<unknown> = Promise.resolve();
  #stopWatch: (() => Promise<void>) | undefined;

  constructor(options: RegionCertificateOptions) {
    this.#o = options;
  }

  /** Follows the register from now on: each newer valid pair goes live here. */
  async follow(): Promise<void> {
    this.#stopWatch ??= await this.#o.register.watch((text) => {
      void this.#take(text, "watch").catch((e: unknown) =>
        this.#o.log.error({ err: reasonOf(e) }, "could not install the region's certificate"),
      );
    });
  }

  async close(): Promise<void> {
    const stop = this.#stopWatch;
    this.#stopWatch = undefined;
    await stop?.();
    await this.#queue.catch(() => undefined);
  }

  /**
   * Brings this host and the region level: takes the region's pair when it is newer than the
   * live one, publishes the live one when it is newer than the region's (a publish that failed
   * after a renewal, or hosts that had certificates before they formed a region).
   */
  async sync(): Promise<void> {
    const current = await this.#o.register.read();
    const took = current === undefined ? false : await this.#take(current.text, "etcd");
    if (!took) await this.publish({ seen: current });
  }

  /**
   * Publishes the live pair unless the region's is newer (or as new, unless the live one is
   * `fresh` from the CA); retries when overtaken.
   */
  async publish(
    opts: { fresh?: boolean; seen?: Awaited<ReturnType<Register["read"]>> } = {},
  ): Promise<void> {
    const { register, store, names, now, log } = this.#o;
    const live = await store.readLive();
    if (live === undefined || "error" in live) return;
    let info: CertificateInfo;
    try {
      info = checkRegionPair(live, names, now());
    } catch {
      return; // not something the region would take; the renewal replaces it
    }
    let current = "seen" in opts ? opts.seen : await register.read();
    for (let attempt = 0; attempt < 4; attempt++) {
      const region = current && this.#info(current.text);
      if (!shouldPublish(info, region, opts.fresh ?? false)) return;
      const pair = {
        certPem: live.certPem,
        keyPem: live.keyPem,
        node: this.#o.node,
        publishedAt: now(),
      };
      if (await register.write(encodePair(pair), current?.version ?? 0)) {
        log.info(
          { serial: info.serial, notAfter: info.notAfter },
          "certificate published to the region",
        );
        return;
      }
      current = await register.read();
    }
  }

  /** The region's pair's description when it passes the checks, else undefined. */
  #info(text: string): CertificateInfo | undefined {
    try {
      return checkRegionPair(decodePair(text), this.#o.names, this.#o.now());
    } catch {
      return undefined;
    }
  }

  /** Takes the pair in `text` if it is valid and newer than the live one; true when it did. */
  #take(text: string, from: "etcd" | "watch"): Promise<boolean> {
    const run = this.#queue.then(() => this.#takeNow(text, from));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #takeNow(text: string, from: "etcd" | "watch"): Promise<boolean> {
    const { store, names, now, log } = this.#o;
    let pair: RegionPair | undefined;
    let info: CertificateInfo;
    try {
      pair = decodePair(text);
      info = checkRegionPair(pair, names, now());
    } catch (e) {
      log.error(
        { err: reasonOf(e), from, publishedBy: pair?.node },
        "refused the region's certificate from etcd; keeping this host's",
      );
      return false;
    }
    const live = await store.readLive();
    const ours = live !== undefined && "info" in live ? live.info : undefined;
    if (!shouldTake(info, ours)) return false;
    const archiveDir = await store.install(pair.certPem, pair.keyPem, now());
    log.info(
      { serial: info.serial, notAfter: info.notAfter, publishedBy: pair.node, archive: archiveDir },
      "took the region's certificate",
    );
    await store.prune(this.#o.keepArchives).catch((e: unknown) => {
      log.warn({ err: reasonOf(e) }, "could not prune old backups");
    });
    await this.#o.installed(info);
    return true;
  }
}
