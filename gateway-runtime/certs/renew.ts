/**
 * One renewal run, start to finish: account, CAA, DNS-01 issuance, checks, install, ledger.
 * The manager decides when to run it and holds the lock; everything here honours `signal`.
 *
 * CAA comes before the order, so an account that changed (new workdir account, or a new
 * `account_url`) is permitted before the CA checks CAA. The change order never leaves the
 * domain unable to renew: RFC 2136 replaces the set in one atomic UPDATE; Cloudflare creates
 * the new records before deleting the old, and the union of two CAA sets permits what either
 * permits. Records with other tags (iodef...) are kept; an unchanged set is not rewritten.
 */
import type { Agent } from "node:https";
import type { Logger } from "../log/index.js";
import { type Account, loadOrCreateAccount } from "./acme/account.js";
import { fetchDirectory, trustAgent, withAcmeHttp } from "./acme/http.js";
import { issueCertificate } from "./acme/order.js";
import { caaRecords, caaUpToDate, caIdentifier, desiredCaa } from "./caa.js";
import { createDnsProvider } from "./dns/index.js";
import { caaNames, certificateNames } from "../config/names.js";
import type { DnsProvider } from "./dns/provider.js";
import { abortError, CertError, reasonOf, throwIfAborted } from "./errors.js";
import type { Ledger } from "./ledger.js";
import { configuredCheckServers, zoneNameServers } from "./propagation.js";
import type { CertStore } from "./store.js";
import type { CertificateManagerOptions } from "./types.js";
import { type CertificateInfo, verifyCertificate } from "./verify.js";

export interface RenewSettings {
  readonly directoryUrl: string;
  readonly names: readonly string[];
  /** Where the CAA records are kept (names.ts). */
  readonly caaNames: readonly string[];
  readonly autoSetCaa: boolean;
  readonly accountUrl: string | undefined;
  readonly accountKey: string | undefined;
  readonly contactEmail: string | undefined;
  readonly propagationTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepArchives: number;
}

export interface RenewDeps {
  readonly settings: RenewSettings;
  readonly store: CertStore;
  readonly ledger: Ledger;
  readonly dns: DnsProvider;
  readonly agent: () => Promise<Agent | undefined>;
  readonly checkServers: () => Promise<string[]>;
  readonly log: Logger;
  readonly now: () => number;
}

export interface RenewResult {
  readonly info: CertificateInfo;
  readonly accountUrl: string;
  readonly archiveDir: string;
}

/** What a run needs, from the config and the manager's options. */
export function renewDeps(
  opts: CertificateManagerOptions,
  store: CertStore,
  ledger: Ledger,
  log: Logger,
  now: () => number,
): RenewDeps {
  const c = opts.config.core.certbot;
  // The manager runs only for an enabled certbot (cli/run.ts); this names it if that changes.
  if (!c.enabled) throw new CertError("E_CERT_CONFIG", "core.certbot.enabled is false");
  const base = opts.config.core.proxy.base_domain;
  let agent: Promise<Agent | undefined> | undefined;
  return {
    settings: {
      directoryUrl: c.acme_url,
      names: certificateNames(base, opts.config.core.rpc_domain),
      caaNames: caaNames(base, opts.config.core.rpc_domain),
      autoSetCaa: c.auto_set_caa,
      accountUrl: c.account_url,
      accountKey: c.account_key?.reveal(),
      contactEmail: c.contact_email,
      propagationTimeoutMs: c.dns_check_timeout,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      keepArchives: opts.keepArchives ?? 10,
    },
    store,
    ledger,
    dns: opts.dns ?? createDnsProvider(c, base, opts.dnsOverrides),
    agent: () => {
      agent ??= trustAgent(c.acme_ca_file);
      return agent;
    },
    checkServers: async () => configuredCheckServers(c) ?? zoneNameServers(base),
    log,
    now,
  };
}

/** Account loading is cached per manager: the first successful load is reused. */
export class AccountCache {
  #account: Promise<Account> | undefined;

  get(deps: RenewDeps): Promise<Account> {
    if (this.#account === undefined) {
      const s = deps.settings;
      const p = loadOrCreateAccount({
        directoryUrl: s.directoryUrl,
        workdir: deps.store.workdir,
        accountUrl: s.accountUrl,
        accountKey: s.accountKey,
        contactEmail: s.contactEmail,
        log: deps.log,
      });
      this.#account = p;
      p.catch(() => {
        if (this.#account === p) this.#account = undefined;
      });
    }
    return this.#account;
  }
}

async function ensureCaa(deps: RenewDeps, accountUrl: string, signal: AbortSignal): Promise<void> {
  const s = deps.settings;
  let directory: unknown;
  try {
    directory = await fetchDirectory(s.directoryUrl);
  } catch (e) {
    if (signal.aborted) throw abortError(signal);
    throw new CertError("E_CERT_ACME", `reading the ACME directory: ${reasonOf(e)}`, { cause: e });
  }
  const ours = caaRecords(caIdentifier(directory, s.directoryUrl), accountUrl);
  for (const name of s.caaNames) {
    const existing = deps.dns.listCaa ? await deps.dns.listCaa(name, { signal }) : undefined;
    const desired = existing === undefined ? ours : desiredCaa(existing, ours);
    if (existing !== undefined && caaUpToDate(existing, desired)) continue;
    await deps.dns.setCaa(name, desired, { signal });
    deps.log.info({ name, records: desired }, "CAA records set");
  }
}

/**
 * Writes the CAA records for the account now, outside a renewal (admin `SetCaa`): after an
 * operator or another tool changed them. Unchanged records are read, not rewritten.
 */
export async function setCaaNow(
  deps: RenewDeps,
  accounts: AccountCache,
  signal: AbortSignal,
): Promise<void> {
  const ctx = {
    agent: await deps.agent(),
    signal,
    requestTimeoutMs: deps.settings.requestTimeoutMs,
  };
  try {
    await withAcmeHttp(ctx, async () => ensureCaa(deps, (await accounts.get(deps)).url, signal));
  } catch (e) {
    if (signal.aborted) throw abortError(signal);
    if (e instanceof CertError) throw e;
    throw new CertError("E_CERT_DNS", reasonOf(e), { cause: e });
  }
}

export async function renewOnce(
  deps: RenewDeps,
  accounts: AccountCache,
  signal: AbortSignal,
): Promise<RenewResult> {
  const s = deps.settings;
  const agent = await deps.agent();
  const ctx = { agent, signal, requestTimeoutMs: s.requestTimeoutMs };
  try {
    return await withAcmeHttp(ctx, async () => {
      const account = await accounts.get(deps);
      throwIfAborted(signal);
      if (s.autoSetCaa) await ensureCaa(deps, account.url, signal);
      const issued = await issueCertificate({
        client: account.client,
        names: s.names,
        dns: deps.dns,
        checkServers: deps.checkServers,
        propagationTimeoutMs: s.propagationTimeoutMs,
        signal,
        log: deps.log,
        onFailedValidation: (names) => deps.ledger.recordFailures(names, deps.now()),
      });
      const info = verifyCertificate(issued.certPem, issued.keyPem, s.names, deps.now());
      throwIfAborted(signal);
      const archiveDir = await deps.store.install(issued.certPem, issued.keyPem, deps.now());
      // The certificate is live now; bookkeeping failures are logged, not the run's result.
      await deps.ledger.recordIssued(s.names, deps.now()).catch((e: unknown) => {
        deps.log.warn({ err: reasonOf(e) }, "could not record the issuance in the rate ledger");
      });
      await deps.store.prune(s.keepArchives).then(
        (pruned) => pruned.length > 0 && deps.log.debug({ pruned }, "old backups removed"),
        (e: unknown) => deps.log.warn({ err: reasonOf(e) }, "could not prune old backups"),
      );
      return { info, accountUrl: account.url, archiveDir };
    });
  } catch (e) {
    if (signal.aborted && !(e instanceof CertError && e.code === "E_CERT_CA_REJECTED")) {
      throw abortError(signal);
    }
    if (e instanceof CertError) throw e;
    throw new CertError("E_CERT_ACME", reasonOf(e), { cause: e });
  }
}
