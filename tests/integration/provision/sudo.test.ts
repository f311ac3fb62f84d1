/**
 * SSH as a user with passwordless sudo, for real: a throw-away user on a real OpenSSH server
 * on loopback, a NOPASSWD drop-in in /etc/sudoers.d, and steps wrapped by `asRoot` run through
 * the engine's command stand-in as a deploy runs them. A step that only root can do succeeds,
 * its stdin reaching the script; a delete runs as root too; without the drop-in the step fails
 * with the error naming the user. The user and the drop-in are made idempotently (a run that
 * died left them) and removed afterwards.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asRoot, bundleOwnedBy } from "../../../host/sudo.js";
import { commandProvider } from "../../../tools/engine/providers/command.js";
import { ASSET_SIG, type Props, SIG_KEY, secret } from "../../../tools/engine/values.js";
import { startSshd, type TestSshd } from "../../helpers/sshd.js";

const HOST = "127.0.6.7";
const USER = "gw-sudo-test";
const DROP_IN = `/etc/sudoers.d/${USER}`;
// Root's own place: the user cannot write here without sudo.
const TARGET = `/etc/${USER}.conf`;
const CMD = "urn:pulumi:t::p::command:remote:Command::step";
const COPY = "urn:pulumi:t::p::command:remote:CopyToRemote::copy";
// A folder only root may write, as the bundle's /opt/gateway.
const DIR = `/etc/${USER}.d`;
const provider = commandProvider({ pwd: "/", log: () => {} });
let sshd: TestSshd;
let connection: Props;

function allowSudo(): void {
  writeFileSync(DROP_IN, `${USER} ALL=(root) NOPASSWD: ALL\n`, { mode: 0o440 });
  execFileSync("visudo", ["-cqf", DROP_IN]);
}

function removeUser(): void {
  rmSync(DROP_IN, { force: true });
  rmSync(TARGET, { force: true });
  rmSync(DIR, { recursive: true, force: true });
  if (spawnSync("id", ["-u", USER]).status === 0)
    execFileSync("userdel", ["-r", USER], { stdio: "ignore" });
}

beforeAll(async () => {
  if (spawnSync("sudo", ["-V"]).error) throw new Error("sudo is missing: apt-get install sudo");
  removeUser();
  // A password of "*": no password login, and not a locked account, which sshd would refuse.
  execFileSync("useradd", ["--create-home", "--shell", "/bin/sh", "--password", "*", USER]);
  allowSudo();
  sshd = await startSshd(HOST);
  // sshd reads a user's authorized keys as that user: the folder must let it through (its
  // keys stay 0600, root's).
  chmodSync(sshd.dir, 0o755);
  connection = {
    host: HOST,
    user: USER,
    privateKey: secret(readFileSync(sshd.clientKey, "utf8")),
    hostKey: sshd.hostKey,
    dialErrorLimit: 2,
  };
}, 30_000);
afterAll(async () => {
  await sshd?.stop();
  removeUser();
});

const checked = async (news: Props) =>
  (await provider.check({ urn: CMD, olds: undefined, news })).inputs;

/** Writes stdin to TARGET, 0600 root's, which only root can; says who ran it. */
const WRITE = `#!/bin/sh
set -eu
umask 077
cat > ${TARGET}
echo "uid $(id -u)"
`;

describe(`SSH as ${USER}, a user with passwordless sudo`, () => {
  it("the user itself cannot write there: the step needs root", () => {
    const r = spawnSync("su", [USER, "-c", `echo x > ${TARGET}`], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(existsSync(TARGET)).toBe(false);
  });

  it("a wrapped create runs as root, with its stdin", async () => {
    const news = await checked({ connection, create: asRoot(WRITE, USER), stdin: "the config\n" });
    const { outputs } = await provider.create({ urn: CMD, news, preview: false });
    expect(outputs.stdout).toBe("uid 0");
    expect(readFileSync(TARGET, "utf8")).toBe("the config\n");
    expect(statSync(TARGET)).toMatchObject({ uid: 0, mode: 0o100600 });
  });

  it("a wrapped delete runs as root", async () => {
    const olds = await checked({
      connection,
      create: "true",
      delete: asRoot(`#!/bin/sh\nrm ${TARGET}\n`, USER),
    });
    await provider.delete({ urn: CMD, id: "x", olds, oldInputs: olds });
    expect(existsSync(TARGET)).toBe(false);
  });

  it("the bundle's file, given to the user by the setup, is copied without sudo", async () => {
    mkdirSync(DIR, { mode: 0o755 });
    const file = `${DIR}/gateway.mjs`;
    const setup = await checked({ connection, create: asRoot(bundleOwnedBy(USER, file), USER) });
    await provider.create({ urn: CMD, news: setup, preview: false });
    const local = join(sshd.dir, "bundle.mjs");
    writeFileSync(local, "// the bundle\n");
    const news = (
      await provider.check({
        urn: COPY,
        olds: undefined,
        news: {
          connection,
          source: { [SIG_KEY]: ASSET_SIG, path: local, hash: "h1" },
          remotePath: file,
        },
      })
    ).inputs;
    await provider.create({ urn: COPY, news, preview: false });
    expect(readFileSync(file, "utf8")).toBe("// the bundle\n");
    expect(statSync(DIR).uid).toBe(0);
  });

  it("without the drop-in sudo wants a password: the step fails naming the user", async () => {
    rmSync(DROP_IN);
    try {
      const news = await checked({ connection, create: asRoot(WRITE, USER), stdin: "x" });
      await expect(provider.create({ urn: CMD, news, preview: false })).rejects.toThrow(
        `SSH user ${USER} cannot run the gateway's steps as root with sudo -n (sudo: a password is required): give ${USER} passwordless sudo`,
      );
      expect(existsSync(TARGET)).toBe(false);
    } finally {
      allowSudo();
    }
  });
});
