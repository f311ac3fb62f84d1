import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APP_A, type ProxyLab, run, startProxyLab, TEST_DOMAIN } from "./harness.js";

const SSHD = "/usr/sbin/sshd";
const SSH_IP = "127.0.5.2";
let lab: ProxyLab;
let sshd: ChildProcess;
let dir: string;

function keygen(file: string): void {
  const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file], { timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

beforeAll(async () => {
  // CI installs openssh-server; a missing sshd is a failure, never a skip.
  if (spawnSync(SSHD, ["-V"]).error) throw new Error(`${SSHD} is missing: apt-get install openssh-server`);
  lab = await startProxyLab();
  lab.addInstance("aa01", APP_A, SSH_IP);
  dir = mkdtempSync(join(tmpdir(), "gw-sshd-"));
  keygen(join(dir, "host"));
  keygen(join(dir, "client"));
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client.pub")));
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `ListenAddress ${SSH_IP}:22`,
      `HostKey ${join(dir, "host")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "StrictModes no",
      "UsePAM no",
    ].join("\n"),
  );
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  sshd = spawn(SSHD, ["-D", "-e", "-f", join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  sshd.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!log.includes("Server listening")) {
    if (Date.now() > deadline || sshd.exitCode !== null) throw new Error(`sshd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(async () => {
  sshd?.kill("SIGTERM");
  await lab?.close();
});

describe("SSH through <app-id>-22", () => {
  it("a real ssh client reaches the CVM's sshd with openssl s_client as ProxyCommand", async () => {
    const sni = `${APP_A}-22.${TEST_DOMAIN}`;
    const proxyCommand = `openssl s_client -quiet -verify_return_error -connect 127.0.0.1:${lab.port} -servername ${sni} -CAfile ${lab.ca.certFile}`;
    const r = await run(
      "ssh",
      [
        "-o", `ProxyCommand=${proxyCommand}`,
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10",
        "-i", join(dir, "client"),
        `root@${sni}`,
        "echo ssh-through-gateway",
      ],
      { timeoutMs: 20_000 },
    );
    expect(r.stdout.trim()).toBe("ssh-through-gateway");
    expect(r.code).toBe(0);
  });
});
