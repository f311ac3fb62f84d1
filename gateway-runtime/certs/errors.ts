import { GatewayError } from "../errors.js";

export type CertErrorCode =
  /** The DNS provider refused or failed a TXT or CAA change (API error, rcode, TSIG, network). */
  | "E_CERT_DNS"
  /** A challenge TXT value did not become visible on every check server in time. */
  | "E_CERT_DNS_PROPAGATION"
  /** Talking to the ACME server failed (network, HTTP error, unexpected answer). */
  | "E_CERT_ACME"
  /** The CA refused: a challenge or the order became invalid, or an identifier was rejected. */
  | "E_CERT_CA_REJECTED"
  /** The issued certificate failed our checks (key, names, expiry, chain) and was not used. */
  | "E_CERT_INVALID"
  /** Our own ledger of the CA's rate limits says an attempt now would be refused. */
  | "E_CERT_RATE_LIMITED"
  /** The run took longer than `renew_timeout` and was aborted. */
  | "E_CERT_TIMEOUT"
  /** The manager was stopped during the run. */
  | "E_CERT_ABORTED"
  /** Reading or writing files in the work directory failed. */
  | "E_CERT_STORE"
  /** etcd (`core.cluster`) could not be read or written, or kept changing under an update. */
  | "E_CERT_CLUSTER"
  /** The certbot config lacks what the chosen DNS provider or account needs. */
  | "E_CERT_CONFIG";

export class CertError extends GatewayError<CertErrorCode> {
  /** For E_CERT_RATE_LIMITED: the earliest time (ms since epoch) an attempt is allowed. */
  readonly retryAt: number | undefined;

  constructor(
    code: CertErrorCode,
    message: string,
    options?: { cause?: unknown; retryAt?: number },
  ) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CertError";
    this.retryAt = options?.retryAt;
  }
}

export const reasonOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Turns an abort into E_CERT_TIMEOUT or E_CERT_ABORTED; other errors pass unchanged. */
export function abortError(signal: AbortSignal): CertError {
  const reason: unknown = signal.reason;
  if (reason instanceof CertError) return reason;
  const timeout = reason instanceof DOMException && reason.name === "TimeoutError";
  return timeout
    ? new CertError("E_CERT_TIMEOUT", "certificate run aborted: renew_timeout reached", {
        cause: reason,
      })
    : new CertError("E_CERT_ABORTED", "certificate run aborted: manager stopping", {
        cause: reason,
      });
}

/** Throws the CertError for `signal` if it is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** Sleeps `ms`, rejecting with the signal's CertError when aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
