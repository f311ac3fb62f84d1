/**
 * Runs a command on a host as pulumi-command's `connection` describes it, with OpenSSH's client:
 * the private key and the pinned host key go to 0600 files in a private temporary directory
 * that is removed afterwards; without `hostKey` any host key is accepted, as the provider does.
 * Dial failures are retried `dialErrorLimit` times with the provider's backoff (100 ms × 1.5,
 * at most 5 s); `perDialTimeout` bounds each dial.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProviderError } from "./types.js";

export interface Connection {
  host: string;
  port: number;
  user: string;
  privateKey?: string;
  hostKey?: string;
  dialErrorLimit: number;
  perDialTimeout: number;
  agentSocketPath?: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** ssh's own failures (cannot connect, authentication) exit 255. */
const SSH_FAILED = 255;

async function withIdentity<T>(conn: Connection, use: (args: string[]) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "engine-ssh-"));
  // Everything after the mkdtemp is inside the try: a failed write (a full disk) or a `use` that
  // throws before returning its promise must not leave a private key behind in the temp dir.
  try {
    return await use(identityArgs(conn, dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function identityArgs(conn: Connection, dir: string): string[] {
  const args = [
    "-o",
    "BatchMode=yes",
    "-o",
    `ConnectTimeout=${conn.perDialTimeout}`,
    "-o",
    "LogLevel=ERROR",
  ];
  if (conn.privateKey !== undefined) {
    const key = join(dir, "id");
    writeFileSync(key, conn.privateKey.endsWith("\n") ? conn.privateKey : `${conn.privateKey}\n`, {
      mode: 0o600,
    });
    args.push("-i", key, "-o", "IdentitiesOnly=yes");
  }
  if (conn.hostKey !== undefined) {
    const known = join(dir, "known_hosts");
    const host = conn.port === 22 ? conn.host : `[${conn.host}]:${conn.port}`;
    writeFileSync(known, `${host} ${conn.hostKey.trim()}\n`, { mode: 0o600 });
    args.push("-o", `UserKnownHostsFile=${known}`, "-o", "StrictHostKeyChecking=yes");
  } else {
    args.push("-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no");
  }
  return args;
}

function exec(
  file: string,
  args: string[],
  opts: {
    input?: string;
    env?: NodeJS.ProcessEnv;
    onLine?: (stream: "stdout" | "stderr", line: string) => void;
  },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: opts.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const lines = (stream: "stdout" | "stderr") => {
      let rest = "";
      return (chunk: Buffer) => {
        (stream === "stdout" ? out : err).push(chunk);
        if (!opts.onLine) return;
        const text = rest + chunk.toString("utf8");
        const parts = text.split("\n");
        rest = parts.pop() ?? "";
        for (const line of parts) opts.onLine(stream, line);
      };
    };
    child.stdout.on("data", lines("stdout"));
    child.stderr.on("data", lines("stderr"));
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
    child.once("error", reject);
    child.once("close", (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
  });
}

async function retrying(
  conn: Connection,
  attempt: () => Promise<RunResult>,
  log: (line: string) => void,
) {
  let delay = 100;
  for (let n = 1; ; n++) {
    const result = await attempt();
    const limit = conn.dialErrorLimit;
    if (result.code !== SSH_FAILED || (limit >= 0 && n >= limit)) return result;
    log(`Dial ${n}/${limit < 0 ? "unlimited" : limit} failed: retrying`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 1.5, 5_000);
  }
}

function sshEnv(
  conn: Connection,
  env: Record<string, string>,
): { env: NodeJS.ProcessEnv; args: string[] } {
  const names = Object.keys(env);
  return {
    env: {
      ...process.env,
      ...env,
      ...(conn.agentSocketPath === undefined ? {} : { SSH_AUTH_SOCK: conn.agentSocketPath }),
    },
    args: names.flatMap((n) => ["-o", `SendEnv=${n}`]),
  };
}

/** Runs `command` on the host; environment variables are sent as the provider sends them (the server must AcceptEnv them). */
export function runRemote(
  conn: Connection,
  command: string,
  opts: {
    stdin?: string;
    env?: Record<string, string>;
    onLine?: (stream: "stdout" | "stderr", line: string) => void;
    log: (line: string) => void;
  },
): Promise<RunResult> {
  return withIdentity(conn, (base) => {
    const { env, args } = sshEnv(conn, opts.env ?? {});
    const argv = [
      ...base,
      "-p",
      String(conn.port),
      ...args,
      "-l",
      conn.user,
      conn.host,
      "--",
      command,
    ];
    return retrying(
      conn,
      () =>
        exec("ssh", argv, {
          ...(opts.stdin === undefined ? {} : { input: opts.stdin }),
          env,
          ...(opts.onLine ? { onLine: opts.onLine } : {}),
        }),
      opts.log,
    );
  });
}

/** Copies a local file to `remotePath`, creating its parent directories first, as the provider's SFTP copy does. */
export async function copyToRemote(
  conn: Connection,
  localPath: string,
  remotePath: string,
  log: (line: string) => void,
): Promise<void> {
  const parent = remotePath.replace(/\/[^/]*$/, "") || "/";
  const mkdir = await runRemote(conn, `mkdir -p '${parent.replaceAll("'", `'"'"'`)}'`, { log });
  if (mkdir.code !== 0)
    throw new ProviderError(`creating ${parent} on ${conn.host}: ${mkdir.stderr.trim()}`);
  await withIdentity(conn, async (base) => {
    const argv = [
      ...base,
      "-P",
      String(conn.port),
      "-q",
      localPath,
      `${conn.user}@${conn.host.includes(":") ? `[${conn.host}]` : conn.host}:${remotePath}`,
    ];
    const result = await retrying(conn, () => exec("scp", argv, {}), log);
    if (result.code !== 0)
      throw new ProviderError(
        `copying ${localPath} to ${conn.host}:${remotePath}: ${result.stderr.trim()}`,
      );
  });
}
