import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SSHD = "/usr/sbin/sshd";

export interface TestSshd {
  readonly dir: string;
  /** The client's private key file (authorized for root). */
  readonly clientKey: string;
  /** The server's public host key (`ssh-ed25519 AAAA...`). */
  readonly hostKey: string;
  /** Stops sshd, waits for it to exit, and removes its directory (keys, config). */
  stop(): Promise<void>;
}

function keygen(file: string): void {
  const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file], {
    timeout: 10_000,
  });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

/**
 * A real OpenSSH server on `address`:22 (a loopback address), root login by a fresh key, with
 * `acceptEnv` names passed to AcceptEnv. CI installs openssh-server: a missing sshd fails.
 */
export async function startSshd(
  address: string,
  acceptEnv: readonly string[] = [],
): Promise<TestSshd> {
  if (spawnSync(SSHD, ["-V"]).error)
    throw new Error(`${SSHD} is missing: apt-get install openssh-server`);
  const dir = mkdtempSync(join(tmpdir(), "gw-sshd-"));
  const remove = () => rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  try {
    return await serve(dir, address, acceptEnv, remove);
  } catch (error) {
    remove();
    throw error;
  }
}

async function serve(
  dir: string,
  address: string,
  acceptEnv: readonly string[],
  remove: () => void,
): Promise<TestSshd> {
  keygen(join(dir, "host"));
  keygen(join(dir, "client"));
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client.pub")));
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `ListenAddress ${address}:22`,
      `HostKey ${join(dir, "host")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "StrictModes no",
      "UsePAM no",
      "Subsystem sftp internal-sftp",
      ...(acceptEnv.length > 0 ? [`AcceptEnv ${acceptEnv.join(" ")}`] : []),
    ].join("\n"),
  );
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const sshd: ChildProcess = spawn(SSHD, ["-D", "-e", "-f", join(dir, "sshd_config")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  sshd.stderr?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  const deadline = Date.now() + 10_000;
  while (!log.includes("Server listening")) {
    if (Date.now() > deadline || sshd.exitCode !== null) {
      sshd.kill("SIGKILL");
      throw new Error(`sshd did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const hostKey = readFileSync(join(dir, "host.pub"), "utf8")
    .trim()
    .split(" ")
    .slice(0, 2)
    .join(" ");
  // Removed once sshd is gone: while it exits it still unlinks its pid file there, and a
  // removal racing that left the directory behind in a CI run.
  const stop = async () => {
    if (sshd.exitCode === null && sshd.signalCode === null) {
      const exited = new Promise((resolve) => sshd.once("exit", resolve));
      sshd.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    }
    remove();
  };
  return { dir, clientKey: join(dir, "client"), hostKey, stop };
}
