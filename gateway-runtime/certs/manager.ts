/**
 * Keeps one certificate for `*.<base>` and `<base>` (and `rpc_domain` outside them, names.ts)
 * live in `<workdir>/live/`: checks every
 * `renew_interval`, renews inside `renew_before_expiration` (or when there is no usable
 * certificate), aborts a run after `renew_timeout`, backs off exponentially after failures,
 * respects the CA's rate limits (ledger), lets one node renew at a time (lock), and tells
 * listeners (the proxy's reload) when a new certificate is live. See renew.ts for one run.
 * In a region (`shared`, see open.ts) the lock, the ledger and the certificate are the region's:
 * the host that renews publishes the pair, the others take it (region.ts).
 */
import { hostname } from "node:os";
import { join } from "node:path";
import type { GatewayConfig } from "../config/index.js";
import type { Logger } from "../log/index.js";
import { CertError, reasonOf } from "./errors.js";
import { blockedUntil, LETS_ENCRYPT_LIMITS, Ledger } from "./ledger.js";
import { FileLock, type RenewalLock } from "./lock.js";
import { RegionCertificate } from "./region.js";
import { AccountCache, type RenewDeps, renewDeps, renewOnce, setCaaNow } from "./renew.js";
import {
  backoffDelay,
  DEFAULT_BACKOFF,
  expiryWarningDue,
  MAX_TIMER_MS,
  type RenewReason,
  renewalReason,
} from "./schedule.js";
import { CertStore } from "./store.js";
import type {
  CertificateListener,
  CertificateManagerOptions,
  CheckOutcome,
  ManagerStatus,
  RenewalRecord,
} from "./types.js";
import type { CertificateInfo } from "./verify.js";

export type {
  CertificateEvent,
  CertificateListener,
  CertificateManagerOptions,
  CheckOutcome,
  ManagerStatus,
  RenewalRecord,
} from "./types.js";

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class CertificateManager {
  readonly certFile: string;
  readonly keyFile: string;
  readonly #c: GatewayConfig["core"]["certbot"];
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #store: CertStore;
  readonly #ledger: Ledger;
  readonly #lock: RenewalLock;
  readonly #deps: RenewDeps;
  readonly #region: RegionCertificate | undefined;
  readonly #accounts = new AccountCache();
  readonly #listeners = new Set<CertificateListener>();
  readonly #stopper = new AbortController();
  readonly #opts: CertificateManagerOptions;
  #info: CertificateInfo | undefined;
  #last: RenewalRecord | undefined;
  #lastSuccess: Date | undefined;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #nextCheck: number | undefined;
  #checking: { readonly force: boolean; readonly outcome: Promise<CheckOutcome> } | undefined;
  #lastWarned: number | undefined;
  readonly #ready = deferred<CertificateInfo>();
  #stopped: Promise<void> | undefined;

  constructor(opts: CertificateManagerOptions) {
    const { config } = opts;
    this.#c = config.core.certbot;
    if (!this.#c.enabled) throw new CertError("E_CERT_CONFIG", "core.certbot.enabled is false");
    this.#opts = opts;
    this.#log = opts.log.child({ part: "certs" });
    this.#now = opts.now ?? Date.now;
    this.#store = new CertStore(this.#c.workdir);
    this.certFile = this.#store.certFile;
    this.keyFile = this.#store.keyFile;
    this.#ledger = opts.ledger ?? new Ledger(join(this.#c.workdir, "ledger.json"));
    this.#lock =
      opts.lock ??
      new FileLock(join(this.#c.workdir, "renew.lock"), {
        staleMs: 2 * this.#c.renew_timeout + 60_000,
      });
    this.#deps = renewDeps(opts, this.#store, this.#ledger, this.#log, this.#now);
    this.#region =
      opts.shared &&
      new RegionCertificate({
        register: opts.shared,
        store: this.#store,
        names: this.#deps.settings.names,
        node: opts.node ?? hostname(),
        keepArchives: this.#deps.settings.keepArchives,
        log: this.#log,
        now: this.#now,
        installed: (info) => this.#seen(info, true),
      });
    this.#ready.promise.catch(() => undefined);
  }

  /** Calls `listener` each time a new certificate is live; returns the unsubscribe. */
  onCertificate(listener: CertificateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Reads the live certificate and starts the checks (the first one now, in the background).
   * In a region it first follows the region's certificate and takes it when it is newer, so a
   * host joining a region serves the region's pair instead of ordering its own.
   */
  async start(): Promise<void> {
    await this.#store.init();
    const live = await this.#store.readLive();
    if (live !== undefined && "info" in live) await this.#seen(live.info, false);
    if (this.#region) {
      await this.#region.follow().catch((e: unknown) => this.#regionFailed(e, "following"));
      await this.#syncRegion();
    }
    this.#schedule(0);
  }

  /** Resolves once a certificate for the names is live (at once when there is one already). */
  whenReady(): Promise<CertificateInfo> {
    return this.#ready.promise;
  }

  /**
   * Runs a check now (or joins the running one); `force` renews even outside the window. A
   * forced check asked while a routine one runs goes after it: joining would answer an
   * operator's RenewCert with the routine check's "none".
   */
  checkNow(opts: { force?: boolean } = {}): Promise<CheckOutcome> {
    const force = opts.force ?? false;
    const running = this.#checking;
    if (running !== undefined && (running.force || !force)) return running.outcome;
    clearTimeout(this.#timer);
    const outcome =
      running === undefined
        ? this.#check(force)
        : running.outcome.then(
            () => this.#check(true),
            () => this.#check(true),
          );
    const entry = { force, outcome };
    this.#checking = entry;
    void outcome.finally(() => {
      if (this.#checking === entry) this.#checking = undefined;
    });
    return outcome;
  }

  /**
   * Writes the CAA records pinning issuance to this account now, whatever `auto_set_caa` says
   * (an operator asked); bounded by `renew_timeout`.
   */
  setCaa(): Promise<void> {
    const signal = AbortSignal.any([
      this.#stopper.signal,
      AbortSignal.timeout(this.#c.renew_timeout),
    ]);
    return setCaaNow(this.#deps, this.#accounts, signal);
  }

  status(): ManagerStatus {
    return {
      ...(this.#info ? { notAfter: this.#info.notAfter, serial: this.#info.serial } : {}),
      ...(this.#last ? { lastRenewal: this.#last } : {}),
      ...(this.#lastSuccess ? { lastSuccess: this.#lastSuccess } : {}),
      nextCheck: this.#nextCheck === undefined ? undefined : new Date(this.#nextCheck),
      failures: this.#failures,
    };
  }

  /** Stops the checks and aborts a running renewal; waits for it (bounded). */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopper.abort();
    clearTimeout(this.#timer);
    this.#nextCheck = undefined;
    this.#ready.reject(new CertError("E_CERT_ABORTED", "certificate manager stopped"));
    const running = this.#checking;
    if (running) {
      await Promise.race([
        running.outcome.catch(() => undefined),
        new Promise((r) => setTimeout(r, 5000).unref()),
      ]);
    }
    await this.#region?.close();
    await this.#opts.dispose?.();
  }

  /** Levels this host and the region (region.ts); without etcd the host goes on as it is. */
  async #syncRegion(): Promise<void> {
    await this.#region?.sync().catch((e: unknown) => this.#regionFailed(e, "syncing"));
  }

  #regionFailed(e: unknown, what: string): void {
    this.#log.warn({ err: reasonOf(e) }, `${what} the region's certificate in etcd failed`);
  }

  #schedule(delayMs: number): void {
    if (this.#stopper.signal.aborted) return;
    clearTimeout(this.#timer);
    const delay = Math.min(Math.max(0, delayMs), MAX_TIMER_MS);
    this.#nextCheck = this.#now() + delay;
    this.#timer = setTimeout(() => void this.checkNow(), delay);
    this.#timer.unref();
  }

  /** Records `info` as live; tells listeners when it is new. */
  async #seen(info: CertificateInfo, announce: boolean): Promise<void> {
    const changed = this.#info?.serial !== info.serial;
    this.#info = info;
    if (renewalReason(info, this.#deps.settings.names, this.#now(), 0) === "none") {
      this.#ready.resolve(info);
    }
    if (!changed || !announce) return;
    const event = { certFile: this.certFile, keyFile: this.keyFile, info };
    for (const listener of this.#listeners) {
      try {
        await listener(event);
      } catch (e) {
        this.#log.error({ err: reasonOf(e) }, "a certificate listener failed");
      }
    }
  }

  async #readLive(): Promise<CertificateInfo | undefined> {
    const live = await this.#store.readLive();
    if (live !== undefined && "error" in live) {
      this.#log.warn({ err: live.error }, "the live certificate cannot be read; renewing");
      return undefined;
    }
    if (live) await this.#seen(live.info, true);
    return live?.info;
  }

  #due(info: CertificateInfo | undefined, force: boolean): RenewReason {
    if (force) return "forced";
    const names = this.#deps.settings.names;
    return renewalReason(info, names, this.#now(), this.#c.renew_before_expiration);
  }

  async #check(force: boolean): Promise<CheckOutcome> {
    let reason: RenewReason = force ? "forced" : "none";
    try {
      await this.#syncRegion();
      const info = await this.#readLive();
      if (info && expiryWarningDue(info.notAfter, this.#now(), this.#lastWarned)) {
        this.#lastWarned = this.#now();
        this.#log.warn(
          { notAfter: info.notAfter, serial: info.serial },
          "the certificate expires within 7 days",
        );
      }
      reason = this.#due(info, force);
      if (reason === "none") {
        this.#schedule(this.#c.renew_interval);
        return { action: "none", reason };
      }
      const block = blockedUntil(
        await this.#ledger.load(),
        this.#deps.settings.names,
        this.#now(),
        this.#opts.limits ?? LETS_ENCRYPT_LIMITS,
      );
      if (block) {
        const error = new CertError("E_CERT_RATE_LIMITED", `not renewing: ${block.reason}`, {
          retryAt: block.until,
        });
        this.#log.warn(
          { until: new Date(block.until), reason: block.reason },
          "renewal postponed by the rate ledger",
        );
        this.#record(error);
        this.#schedule(block.until - this.#now());
        return { action: "rate-limited", reason, error };
      }
      return await this.#renewLocked(reason, force);
    } catch (e) {
      const error =
        e instanceof CertError ? e : new CertError("E_CERT_STORE", reasonOf(e), { cause: e });
      return this.#failed(reason, error);
    }
  }

  async #renewLocked(reason: RenewReason, force: boolean): Promise<CheckOutcome> {
    const handle = await this.#lock.tryAcquire();
    if (handle === undefined) {
      this.#log.info("another node is renewing the certificate");
      this.#schedule(this.#opts.lockRetryMs ?? Math.min(this.#c.renew_interval, 60_000));
      return { action: "locked", reason };
    }
    try {
      // Another node may have renewed while we waited for the lock; in a region its pair is in
      // etcd before its lock is released, so this read sees it.
      await this.#syncRegion();
      const again = this.#due(await this.#readLive(), force);
      if (again === "none") {
        this.#schedule(this.#c.renew_interval);
        return { action: "none", reason: again };
      }
      this.#log.info({ reason }, "renewing the certificate");
      const signal = AbortSignal.any([
        this.#stopper.signal,
        AbortSignal.timeout(this.#c.renew_timeout),
        ...(handle.lost ? [handle.lost] : []),
      ]);
      const result = await renewOnce(this.#deps, this.#accounts, signal);
      this.#failures = 0;
      this.#last = { at: new Date(this.#now()), ok: true };
      this.#lastSuccess = this.#last.at;
      this.#log.info(
        { serial: result.info.serial, notAfter: result.info.notAfter, archive: result.archiveDir },
        "new certificate live",
      );
      await this.#seen(result.info, true);
      // Before the lock is released (finally); a failed publish is retried by the next sync.
      await this.#region
        ?.publish({ fresh: true })
        .catch((e: unknown) => this.#regionFailed(e, "publishing"));
      this.#schedule(this.#c.renew_interval);
      return { action: "renewed", reason };
    } catch (e) {
      const error =
        e instanceof CertError ? e : new CertError("E_CERT_ACME", reasonOf(e), { cause: e });
      return this.#failed(reason, error);
    } finally {
      await handle
        .release()
        .catch((e: unknown) =>
          this.#log.warn({ err: reasonOf(e) }, "could not release the renewal lock"),
        );
    }
  }

  #record(error: CertError): void {
    this.#last = { at: new Date(this.#now()), ok: false, error: error.message, code: error.code };
  }

  #failed(reason: RenewReason, error: CertError): CheckOutcome {
    this.#failures += 1;
    this.#record(error);
    const delay = Math.max(
      backoffDelay(this.#failures, this.#opts.backoff ?? DEFAULT_BACKOFF),
      (error.retryAt ?? 0) - this.#now(),
    );
    this.#log.error(
      { code: error.code, err: error.message, failures: this.#failures, retryInMs: delay },
      "certificate renewal failed",
    );
    this.#schedule(delay);
    return { action: "failed", reason, error };
  }
}
