/**
 * Who may call the admin API. It fails closed: with the API enabled, the gateway refuses to
 * start unless a token, an htpasswd file or an explicit `insecure_no_auth` is configured, since
 * any local process could otherwise force certificate orders (using up the CA's weekly
 * duplicate-certificate allowance) or read every instance's address.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import bcrypt from "bcryptjs";
import type { GatewayConfig } from "../config/index.js";
import { GatewayError } from "../errors.js";

/** The environment variable a token may come from (e.g. a systemd `EnvironmentFile=`). */
export const ADMIN_TOKEN_ENV = "GATEWAY_ADMIN_TOKEN";

type AdminConfig = GatewayConfig["core"]["admin"];

export type AdminAuth =
  | { readonly kind: "none" }
  | {
      readonly kind: "required";
      /** SHA-256 of the token: compared in constant time, whatever the presented length. */
      readonly tokenDigest: Buffer | undefined;
      /** htpasswd users and their bcrypt hashes. */
      readonly users: ReadonlyMap<string, string>;
    };

const digest = (text: string): Buffer => createHash("sha256").update(text).digest();
const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

function configError(message: string): GatewayError<"E_ADMIN_AUTH_CONFIG"> {
  return new GatewayError("E_ADMIN_AUTH_CONFIG", message);
}

async function readSecretFile(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw configError(`${key} ${path} cannot be read: ${(error as Error).message}`);
  }
}

/** `user:hash` lines; anything but bcrypt is refused (MD5, SHA-1 and crypt are too weak). */
export function parseHtpasswd(text: string, source: string): Map<string, string> {
  const users = new Map<string, string>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const colon = line.indexOf(":");
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !BCRYPT.test(hash)) {
      throw configError(
        `${source} line ${i + 1}${colon > 0 ? ` (user ${JSON.stringify(user)})` : ""}: only bcrypt entries are accepted ("htpasswd -B")`,
      );
    }
    users.set(user, hash);
  });
  if (users.size === 0) throw configError(`${source} has no users`);
  return users;
}

/**
 * The admin token and where it comes from: the config, its token file or the environment. Two
 * sources would leave the operator unsure which token works: refused rather than picked.
 */
export async function adminToken(
  admin: AdminConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ readonly source: string; readonly token: string } | undefined> {
  const tokens: [string, string][] = [];
  if (admin.auth_token !== undefined)
    tokens.push(["core.admin.auth_token", admin.auth_token.reveal()]);
  if (admin.auth_token_file !== undefined) {
    const text = await readSecretFile(admin.auth_token_file, "core.admin.auth_token_file");
    tokens.push(["core.admin.auth_token_file", text.split("\n")[0]?.trim() ?? ""]);
  }
  const fromEnv = env[ADMIN_TOKEN_ENV];
  if (fromEnv !== undefined && fromEnv !== "") tokens.push([ADMIN_TOKEN_ENV, fromEnv.trim()]);
  if (tokens.length > 1) {
    throw configError(`admin token set twice: ${tokens.map(([k]) => k).join(" and ")}; keep one`);
  }
  const [found] = tokens;
  return found && { source: found[0], token: found[1] };
}

/** The admin API's authentication from the config, the token file and the environment. */
export async function resolveAdminAuth(
  admin: AdminConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AdminAuth> {
  const token = await adminToken(admin, env);
  if (token !== undefined && token.token.length < 16) {
    throw configError(`the admin token from ${token.source} is shorter than 16 characters`);
  }
  const users =
    admin.htpasswd_file === undefined
      ? new Map<string, string>()
      : parseHtpasswd(
          await readSecretFile(admin.htpasswd_file, "core.admin.htpasswd_file"),
          `core.admin.htpasswd_file ${admin.htpasswd_file}`,
        );
  const configured = token !== undefined || users.size > 0;
  if (admin.insecure_no_auth) {
    if (configured) {
      throw configError("core.admin.insecure_no_auth is true but credentials are configured too");
    }
    return { kind: "none" };
  }
  if (!configured) {
    throw new GatewayError(
      "E_ADMIN_AUTH_REQUIRED",
      `the admin API is enabled without authentication: set core.admin.auth_token, core.admin.auth_token_file, core.admin.htpasswd_file or ${ADMIN_TOKEN_ENV}, or core.admin.insecure_no_auth = true (or core.admin.enabled = false)`,
    );
  }
  return { kind: "required", tokenDigest: token && digest(token.token), users };
}

/**
 * Requests refused for their credentials, per resolved AdminAuth (the metric
 * `gateway_admin_auth_failures_total`). Kept beside the object, not in it, so the union stays
 * plain data; a WeakMap, so two servers in one process (tests) count apart.
 */
const refusals = new WeakMap<AdminAuth, number>();

export function authFailures(auth: AdminAuth): number {
  return refusals.get(auth) ?? 0;
}

/**
 * Throws E_ADMIN_UNAUTHORIZED unless the request carries the token (Bearer, X-Admin-Token, or
 * as the password of HTTP Basic, any user name: how a browser sends it, since it cannot be
 * made to send a Bearer header) or an htpasswd user's password. Without a configured token a
 * Basic password is only ever checked against htpasswd, so nothing matches by default.
 */
export async function authenticate(req: IncomingMessage, auth: AdminAuth): Promise<void> {
  if (auth.kind === "none") return;
  const authorization = req.headers.authorization ?? "";
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
  const header = req.headers["x-admin-token"];
  const token = bearer ?? (typeof header === "string" ? header : undefined);
  if (token !== undefined && auth.tokenDigest !== undefined) {
    if (timingSafeEqual(digest(token), auth.tokenDigest)) return;
  }
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization)?.[1];
  if (basic !== undefined) {
    const decoded = Buffer.from(basic, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const password = colon >= 0 ? decoded.slice(colon + 1) : undefined;
    if (password !== undefined && auth.tokenDigest !== undefined) {
      if (timingSafeEqual(digest(password), auth.tokenDigest)) return;
    }
    if (password !== undefined && auth.users.size > 0) {
      const hash = colon > 0 ? auth.users.get(decoded.slice(0, colon)) : undefined;
      // An unknown user costs a comparison too, so timing does not tell which users exist.
      dummyHash ??= bcrypt.hashSync("never matches", 10);
      const ok = await bcrypt.compare(password, hash ?? dummyHash);
      if (ok && hash !== undefined) return;
    }
  }
  refusals.set(auth, authFailures(auth) + 1);
  throw new GatewayError(
    "E_ADMIN_UNAUTHORIZED",
    token === undefined && basic === undefined
      ? "admin credentials missing: send Authorization: Bearer <token> (or X-Admin-Token), or Basic for an htpasswd user or with the token as password"
      : "admin credentials wrong",
  );
}

let dummyHash: string | undefined;

/**
 * Refuses (403 `E_ADMIN_CROSS_SITE`) a request a browser sent on behalf of another site. A
 * browser re-sends Basic credentials it holds for this origin with any request to it, also one
 * a page elsewhere makes (a form posting to `/prpc/Admin.Exit`): such a request says where it
 * comes from in `Sec-Fetch-Site` or `Origin`, and is refused before anything else. The
 * dashboard itself only GETs, by navigation (`Sec-Fetch-Site: none` or `same-origin`); the CLI
 * and curl send neither header.
 */
export function refuseCrossSite(req: IncomingMessage): void {
  const site = req.headers["sec-fetch-site"];
  const origin = req.headers.origin;
  const foreignSite = site !== undefined && site !== "same-origin" && site !== "none";
  // An opaque origin ("null", a sandboxed frame) is foreign too.
  const foreignOrigin = origin !== undefined && origin !== `http://${req.headers.host ?? ""}`;
  if (foreignSite || foreignOrigin) {
    throw new GatewayError(
      "E_ADMIN_CROSS_SITE",
      "admin requests from another site's page are refused",
    );
  }
}
