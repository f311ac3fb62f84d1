/**
 * acme-client sends every request through one process-wide axios instance, with its own retry
 * interceptor (5 retries, 5-25 s apart, on network errors, 429 and 5xx). We add one request
 * interceptor that reads the current run's context from AsyncLocalStorage, so several managers
 * (or tests) in one process never share trust settings or signals:
 *  - `agent`: an https.Agent trusting the system roots plus `acme_ca_file` (a private CA such as
 *    pebble); without it acme-client retries for 75 s and reports a misleading error;
 *  - `signal`: cancels a request in flight; once aborted, the next request (including
 *    acme-client's own retries) fails at once with an error that carries no axios config, so
 *    acme-client does not retry it. A retry delay already started (5 s x attempt) still runs
 *    out, so a run ends at most that long after its abort;
 *  - `requestTimeoutMs`: a bound on each request (axios `timeout`, which acme-client does not
 *    retry), so a hung CA cannot outlive the run for long.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { readFile } from "node:fs/promises";
import { Agent } from "node:https";
import { rootCertificates } from "node:tls";
import { axios as acmeAxios } from "acme-client";
import { CertError, reasonOf } from "../errors.js";

export interface AcmeHttpContext {
  readonly agent: Agent | undefined;
  readonly signal: AbortSignal;
  readonly requestTimeoutMs: number;
}

const storage = new AsyncLocalStorage<AcmeHttpContext>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  acmeAxios.interceptors.request.use((config) => {
    const ctx = storage.getStore();
    if (ctx === undefined) return config;
    if (ctx.signal.aborted) {
      // No `config` on this error: acme-client's retry interceptor passes it straight through.
      throw ctx.signal.reason ?? new Error("aborted");
    }
    if (ctx.agent !== undefined) config.httpsAgent = ctx.agent;
    config.timeout = ctx.requestTimeoutMs;
    config.signal = ctx.signal;
    return config;
  });
}

/** Runs `fn` with ACME requests bound to `ctx`. */
export function withAcmeHttp<T>(ctx: AcmeHttpContext, fn: () => Promise<T>): Promise<T> {
  install();
  return storage.run(ctx, fn);
}

/** An https.Agent trusting the system roots and the PEM certificates in `caFile`. */
export async function trustAgent(caFile: string | undefined): Promise<Agent | undefined> {
  if (caFile === undefined) return undefined;
  let pem: string;
  try {
    pem = await readFile(caFile, "utf8");
  } catch (e) {
    throw new CertError("E_CERT_CONFIG", `cannot read acme_ca_file ${caFile}: ${reasonOf(e)}`, {
      cause: e,
    });
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new CertError("E_CERT_CONFIG", `acme_ca_file ${caFile} holds no PEM certificate`);
  }
  return new Agent({ ca: [...rootCertificates, pem], keepAlive: false });
}

/** GET the ACME directory (for `meta.caaIdentities`), inside the current context. */
export async function fetchDirectory(url: string): Promise<unknown> {
  install();
  const res = await acmeAxios.get(url, { responseType: "json" });
  if (res.status !== 200) throw new Error(`ACME directory ${url} answered HTTP ${res.status}`);
  return res.data;
}
