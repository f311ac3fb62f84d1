/**
 * One DNS-01 issuance with acme-client's low-level API: order, publish the challenge TXT
 * values, wait until the check servers show them, let the CA validate, remove exactly the
 * values we added (also on failure and on abort), finalize with a fresh ECDSA P-256 key.
 *
 * acme-client's `auto()` is not used: its `verifyChallenge` asks the system resolver, and its
 * status polling sleeps without a signal. We poll ourselves with abortable sleeps.
 */
import type { Authorization, Client, Order } from "acme-client";
import { crypto as acmeCrypto } from "acme-client";
import type { Logger } from "../../log/index.js";
import type { DnsProvider } from "../dns/provider.js";
import { abortError, CertError, reasonOf, sleep, throwIfAborted } from "../errors.js";
import { waitForTxt } from "../propagation.js";

export interface IssueOptions {
  readonly client: Client;
  /** `[*.base, base]`; the CSR's common name is the last one. */
  readonly names: readonly string[];
  readonly dns: DnsProvider;
  /** Servers asked whether the TXT values are visible. */
  readonly checkServers: () => Promise<string[]>;
  readonly propagationTimeoutMs: number;
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Called with the identifiers whose validation failed at the CA (for the rate ledger). */
  readonly onFailedValidation: (names: string[]) => Promise<void>;
  /** Bound on removing our TXT values after the run, which may itself have been aborted. */
  readonly cleanupTimeoutMs?: number;
}

export interface Issued {
  readonly certPem: string;
  readonly keyPem: string;
}

interface Published {
  readonly name: string;
  readonly value: string;
}

const problemOf = (x: { error?: object } | undefined): string | undefined => {
  const e = x?.error as { type?: string; detail?: string } | undefined;
  if (!e) return undefined;
  return [e.type?.replace("urn:ietf:params:acme:error:", ""), e.detail].filter(Boolean).join(": ");
};

/** Calls the CA; an abort becomes the run's CertError, anything else E_CERT_ACME. */
async function acme<T>(signal: AbortSignal, what: string, fn: () => Promise<T>): Promise<T> {
  throwIfAborted(signal);
  try {
    return await fn();
  } catch (e) {
    if (signal.aborted) throw abortError(signal);
    if (e instanceof CertError) throw e;
    throw new CertError("E_CERT_ACME", `${what}: ${reasonOf(e)}`, { cause: e });
  }
}

/** Polls with growing pauses (250 ms .. 2 s) until `done` returns a value; bounded by `signal`. */
async function poll<T>(signal: AbortSignal, step: () => Promise<T | undefined>): Promise<T> {
  for (let pause = 250; ; pause = Math.min(2000, pause * 2)) {
    const result = await step();
    if (result !== undefined) return result;
    await sleep(pause, signal);
  }
}

async function publish(o: IssueOptions, authzs: Authorization[], published: Published[]) {
  const challenges = [];
  for (const authz of authzs) {
    if (authz.status === "valid") continue;
    if (authz.status !== "pending") {
      throw new CertError(
        "E_CERT_CA_REJECTED",
        `authorization for ${authz.identifier.value} is ${authz.status}`,
      );
    }
    const challenge = authz.challenges.find((c) => c.type === "dns-01");
    if (!challenge) {
      throw new CertError(
        "E_CERT_CA_REJECTED",
        `no dns-01 challenge for ${authz.identifier.value}`,
      );
    }
    const value = await o.client.getChallengeKeyAuthorization(challenge);
    const name = `_acme-challenge.${authz.identifier.value.replace(/^\*\./, "")}`;
    throwIfAborted(o.signal);
    published.push({ name, value }); // before the call: a timed-out add may still have landed
    await o.dns.setTxt(name, value, { signal: o.signal });
    challenges.push(challenge);
  }
  const byName = new Map<string, string[]>();
  for (const p of published) byName.set(p.name, [...(byName.get(p.name) ?? []), p.value]);
  if (byName.size > 0) {
    const servers = await o.checkServers();
    for (const [name, values] of byName) {
      await waitForTxt(name, values, {
        servers,
        timeoutMs: o.propagationTimeoutMs,
        signal: o.signal,
        log: o.log,
      });
    }
  }
  return challenges;
}

async function validate(o: IssueOptions, order: Order): Promise<void> {
  const authzs = await acme(o.signal, "reading authorizations", () =>
    o.client.getAuthorizations(order),
  );
  const published: Published[] = [];
  try {
    const challenges = await publish(o, authzs, published);
    for (const c of challenges) {
      await acme(o.signal, "answering a challenge", () => o.client.completeChallenge(c));
    }
    const final = await poll(o.signal, async () => {
      const now = await acme(o.signal, "polling authorizations", () =>
        o.client.getAuthorizations(order),
      );
      return now.some((a) => a.status === "pending") ? undefined : now;
    });
    const failed = final.filter((a) => a.status !== "valid");
    if (failed.length > 0) {
      const names = failed.map((a) =>
        a.wildcard ? `*.${a.identifier.value}` : a.identifier.value,
      );
      await o.onFailedValidation(names);
      const why = failed.map((a) => {
        const c = a.challenges.find((x) => x.type === "dns-01");
        return `${a.identifier.value}${a.wildcard ? " (wildcard)" : ""}: ${problemOf(c) ?? a.status}`;
      });
      throw new CertError("E_CERT_CA_REJECTED", `validation failed: ${why.join("; ")}`);
    }
  } finally {
    await cleanup(o, published);
  }
}

/** Removes exactly the values we published; never throws (failures are logged). */
async function cleanup(o: IssueOptions, published: readonly Published[]): Promise<void> {
  const signal = AbortSignal.timeout(o.cleanupTimeoutMs ?? 30_000);
  for (const p of published) {
    try {
      await o.dns.removeTxt(p.name, p.value, { signal });
    } catch (e) {
      o.log.warn({ name: p.name, err: reasonOf(e) }, "could not remove a challenge TXT value");
    }
  }
}

export async function issueCertificate(o: IssueOptions): Promise<Issued> {
  const identifiers = o.names.map((value) => ({ type: "dns", value }));
  let order = await acme(o.signal, "creating the order", () =>
    o.client.createOrder({ identifiers }),
  );
  await validate(o, order);
  const commonName = o.names[o.names.length - 1] as string;
  const key = await acmeCrypto.createPrivateEcdsaKey("P-256");
  const [, csr] = await acmeCrypto.createCsr({ commonName, altNames: [...o.names] }, key);
  order = await acme(o.signal, "finalizing the order", () => o.client.finalizeOrder(order, csr));
  order = await poll(o.signal, async () => {
    if (order.status === "valid") return order;
    if (order.status === "invalid") {
      throw new CertError(
        "E_CERT_CA_REJECTED",
        `order invalid: ${problemOf(order) ?? "no reason"}`,
      );
    }
    order = await acme(o.signal, "polling the order", () => o.client.getOrder(order));
    return order.status === "valid" ? order : undefined;
  });
  const certPem = await acme(o.signal, "downloading the certificate", () =>
    o.client.getCertificate(order),
  );
  return { certPem, keyPem: key.toString() };
}
