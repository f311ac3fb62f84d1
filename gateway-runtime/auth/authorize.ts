/**
 * App authorization (`core.auth`), as dstack-gateway's `AuthClient::ensure_app_authorized`:
 * POST the attested app info as JSON (dstack's `AppInfo` serde shape, byte fields as lowercase
 * hex) to `url`; a 2xx answer admits, anything else denies. Unlike reqwest's default, redirects
 * are not followed (a 3xx denies), and a timeout or transport error denies too, with a code that
 * says which side failed.
 */
import type { AppInfoJson } from "../attest/app-info.js";
import { GatewayError } from "../errors.js";

export type AuthErrorCode =
  /** The authorization service answered with a non-2xx status. */
  | "E_AUTH_DENIED"
  /** The authorization service could not be asked: timeout, refused, reset, bad URL. */
  | "E_AUTH_UNAVAILABLE";

export interface AuthorizeOptions {
  readonly url: string;
  /** Bound on the whole exchange up to the response status. */
  readonly timeoutMs: number;
}

/** Longest piece of a denial body quoted in the error message. */
const QUOTED_BODY = 200;

async function bodyExcerpt(res: Response): Promise<string> {
  try {
    const text = (await res.text()).trim().replace(/\s+/g, " ");
    return text.length > QUOTED_BODY ? `${text.slice(0, QUOTED_BODY)}…` : text;
  } catch {
    return "";
  }
}

/** The URL as error messages show it: no query (it may hold a token). */
function shown(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

/** fetch's own messages may quote the whole URL. */
function scrub(message: string, url: string, where: string): string {
  let out = message.replaceAll(url, where);
  try {
    out = out.replaceAll(new URL(url).href, where);
  } catch {}
  return out;
}

/**
 * Resolves when `url` admits `appInfo`; throws `E_AUTH_DENIED` or `E_AUTH_UNAVAILABLE`.
 * The request is aborted at `timeoutMs`, and so is reading a denial's body.
 */
export async function authorize(appInfo: AppInfoJson, options: AuthorizeOptions): Promise<void> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  const where = shown(options.url);
  let res: Response;
  try {
    res = await fetch(options.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(appInfo),
      redirect: "manual",
      signal,
    });
  } catch (cause) {
    const timedOut = (cause as Error).name === "TimeoutError";
    throw new GatewayError(
      "E_AUTH_UNAVAILABLE",
      timedOut
        ? `authorization service ${where} did not answer within ${options.timeoutMs} ms`
        : `authorization service ${where} could not be reached: ${scrub((cause as Error).message, options.url, where)}`,
      { cause },
    );
  }
  if (res.status >= 200 && res.status < 300) {
    // Nothing to read: release the connection.
    await res.body?.cancel().catch(() => {});
    return;
  }
  const excerpt = await bodyExcerpt(res);
  throw new GatewayError(
    "E_AUTH_DENIED",
    `app ${appInfo.app_id} is not authorized: ${where} answered ${res.status}${excerpt ? ` (${excerpt})` : ""}`,
  );
}

export type Authorizer = (appInfo: AppInfoJson) => Promise<void>;

/** The authorizer for `core.auth`, or undefined when authorization is off. */
export function authorizerFromConfig(
  auth:
    | { readonly enabled: false; readonly timeout: number }
    | { readonly enabled: true; readonly url: string; readonly timeout: number },
): Authorizer | undefined {
  if (!auth.enabled) return undefined;
  const { url, timeout } = auth;
  return (appInfo) => authorize(appInfo, { url, timeoutMs: timeout });
}
