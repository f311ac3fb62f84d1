import { spawn } from "node:child_process";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ADMIN_TOKEN_ENV,
  AdminServer,
  authenticate,
  authFailures,
  resolveAdminAuth,
} from "../../../gateway-runtime/admin/index.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { until } from "../../../testkit/poll.js";
import { tempDir } from "../../../testkit/tmp.js";
import { adminView } from "./view.js";

const TOKEN = "a-token-of-24-characters";
const dir = tempDir("admin-auth-");
const servers: AdminServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** The admin section of minimalConfig with `set` applied (insecure_no_auth off unless set). */
function admin(set: Record<string, unknown> = {}) {
  let raw = withKey(minimalConfig(), "core.admin", { insecure_no_auth: false });
  for (const [key, value] of Object.entries(set)) raw = withKey(raw, `core.admin.${key}`, value);
  return parseGatewayConfig(raw, "test").core.admin;
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => "resolved",
    (error: { code?: string; message: string }) => `${error.code}: ${error.message}`,
  );
}

describe("admin authentication fails closed", () => {
  it("refuses to start with no credentials, naming every way to give some", async () => {
    const outcome = await codeOf(resolveAdminAuth(admin(), {}));
    expect(outcome).toMatch(/^E_ADMIN_AUTH_REQUIRED: /);
    for (const way of [
      "auth_token",
      "auth_token_file",
      "htpasswd_file",
      ADMIN_TOKEN_ENV,
      "insecure_no_auth",
    ]) {
      expect(outcome).toContain(way);
    }
  });

  it("takes a token from the config, a file (first line) or the environment: exactly one", async () => {
    expect((await resolveAdminAuth(admin({ auth_token: TOKEN }), {})).kind).toBe("required");
    const tokenFile = file("token", `${TOKEN}\n# comment\n`);
    expect((await resolveAdminAuth(admin({ auth_token_file: tokenFile }), {})).kind).toBe(
      "required",
    );
    expect((await resolveAdminAuth(admin(), { [ADMIN_TOKEN_ENV]: TOKEN })).kind).toBe("required");
    expect(
      await codeOf(resolveAdminAuth(admin({ auth_token: TOKEN }), { [ADMIN_TOKEN_ENV]: TOKEN })),
    ).toBe(
      `E_ADMIN_AUTH_CONFIG: admin token set twice: core.admin.auth_token and ${ADMIN_TOKEN_ENV}; keep one`,
    );
    expect(await codeOf(resolveAdminAuth(admin({ auth_token: "short" }), {}))).toMatch(
      /^E_ADMIN_AUTH_CONFIG: the admin token from core.admin.auth_token is shorter than 16/,
    );
    expect(
      await codeOf(resolveAdminAuth(admin({ auth_token_file: join(dir, "none") }), {})),
    ).toMatch(/^E_ADMIN_AUTH_CONFIG: core.admin.auth_token_file .* cannot be read/);
  });

  it("insecure_no_auth is explicit, and not mixed with credentials", async () => {
    expect((await resolveAdminAuth(admin({ insecure_no_auth: true }), {})).kind).toBe("none");
    expect(
      await codeOf(resolveAdminAuth(admin({ insecure_no_auth: true, auth_token: TOKEN }), {})),
    ).toMatch(/insecure_no_auth is true but credentials are configured too/);
  });

  it("htpasswd: bcrypt only, naming the line and user of anything else", async () => {
    const hash = bcrypt.hashSync("op-password", 4);
    const good = file(
      "htpasswd",
      `# operators\nalice:${hash}\nbob:${hash.replace(/^\$2b\$/, "$2y$")}\n`,
    );
    const auth = await resolveAdminAuth(admin({ htpasswd_file: good }), {});
    expect(auth.kind === "required" && [...auth.users.keys()]).toEqual(["alice", "bob"]);
    const md5 = file("htpasswd-md5", `alice:${hash}\ncarol:$apr1$abc$0123456789abcdefghij/.\n`);
    expect(await codeOf(resolveAdminAuth(admin({ htpasswd_file: md5 }), {}))).toMatch(
      /line 2 \(user "carol"\): only bcrypt entries are accepted/,
    );
  });
});

describe("refused admin requests", () => {
  it("are counted per resolved credentials, for gateway_admin_auth_failures_total", async () => {
    const auth = await resolveAdminAuth(admin({ auth_token: "s3cret-token-0123456789" }), {});
    const other = await resolveAdminAuth(admin({ auth_token: "s3cret-token-0123456789" }), {});
    const req = (authorization?: string) =>
      ({ headers: authorization ? { authorization } : {} }) as never;
    await authenticate(req("Bearer s3cret-token-0123456789"), auth);
    await expect(authenticate(req(), auth)).rejects.toThrow(/missing/);
    await expect(authenticate(req("Bearer wrong"), auth)).rejects.toThrow(/wrong/);
    expect([authFailures(auth), authFailures(other)]).toEqual([2, 0]);
  });
});

describe("the admin server with credentials", () => {
  async function serve(set: Record<string, unknown>, socket?: string) {
    const reloadCertificate = vi.fn(async () => {});
    const server = await AdminServer.start({
      listen: socket ? { socket } : { address: "127.0.10.2", port: 0 },
      auth: await resolveAdminAuth(admin(set), {}),
      urls: { url: "", bootnode: "" },
      sources: { view: async () => adminView(), reloadCertificate },
      log: silentLogger(),
    });
    servers.push(server);
    return { server, reloadCertificate };
  }

  /** One request over TCP or the socket: status and body. */
  function call(
    where: { host: string; port: number } | { socketPath: string },
    path: string,
    headers: Record<string, string> = {},
    method = "GET",
  ): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ ...where, path, method, headers, timeout: 5000 }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
  }

  it("Basic auth for htpasswd users; wrong or unknown users get 401 and nothing is done", async () => {
    const htpasswd = file("users", `alice:${bcrypt.hashSync("op-password", 4)}\n`);
    const { server, reloadCertificate } = await serve({ htpasswd_file: htpasswd });
    const where = { host: "127.0.10.2", port: (server.address() as { port: number }).port };
    const basic = (user: string, password: string) => ({
      authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`,
    });
    expect((await call(where, "/metrics", basic("alice", "op-password"))).status).toBe(200);
    for (const headers of [basic("alice", "wrong"), basic("mallory", "op-password"), {}]) {
      const r = await call(where, "/prpc/Admin.ReloadCert", headers, "POST");
      expect([r.status, JSON.parse(r.body).code]).toEqual([401, "E_ADMIN_UNAUTHORIZED"]);
    }
    expect(reloadCertificate).not.toHaveBeenCalled();
  });

  it("listens on a Unix socket of mode 0600, replacing a stale one and refusing any other file", async () => {
    const socket = join(dir, "admin.sock");
    const first = await serve({ auth_token: TOKEN }, socket);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    const ok = await call({ socketPath: socket }, "/prpc/Admin.Status", {
      authorization: `Bearer ${TOKEN}`,
    });
    expect(ok.status).toBe(200);
    expect((await call({ socketPath: socket }, "/prpc/Admin.Status")).status).toBe(401);
    servers.splice(servers.indexOf(first.server), 1);
    await first.server.close();
    // A killed process leaves its socket behind; the next start must not fail on it.
    const holder = spawn(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(socket)})`,
    ]);
    await until("the holder's socket", () => existsSync(socket), 5000);
    holder.kill("SIGKILL");
    await new Promise((resolve) => holder.once("exit", resolve));
    expect(statSync(socket).isSocket()).toBe(true);
    writeFileSync(join(dir, "not-a-socket"), "x");
    await serve({ auth_token: TOKEN }, socket);
    expect(await codeOf(serve({ auth_token: TOKEN }, join(dir, "not-a-socket")))).toMatch(
      /E_ADMIN_AUTH_CONFIG: core.admin.socket .* exists and is not a socket/,
    );
  });
});
