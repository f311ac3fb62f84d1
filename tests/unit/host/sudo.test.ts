/**
 * `asRoot`: the text each remote step runs. Root gets its script unchanged; another user runs
 * it through `sudo -n sh -c`, here a stand-in `sudo` on PATH (the real one, over SSH, is in
 * tests/integration/provision/sudo.test.ts), with the same output and the same stdin.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { asRoot, bundleOwnedBy } from "../../../host/sudo.js";
import { tempDir } from "../../../testkit/tmp.js";

// Quotes of both kinds, a variable, a heredoc and stdin: what the host's scripts hold.
const SCRIPT = `#!/bin/sh
set -eu
x='it'"'"'s'
printf '%s|%s|' "$x" "$(cat)"
cat <<'END'
$HOME stays as written
END
`;

/** A `sudo` that insists on -n, then runs the command, or refuses as sudo does without NOPASSWD. */
const bin = tempDir("fake-sudo-");
writeFileSync(
  join(bin, "sudo"),
  `#!/bin/sh
[ "$1" = -n ] || { echo "fake sudo: -n missing" >&2; exit 99; }
shift
if [ -n "\${REFUSE:-}" ]; then echo "sudo: a password is required" >&2; exit 1; fi
exec "$@"
`,
);
chmodSync(join(bin, "sudo"), 0o755);

function sh(script: string, input: string, env: Record<string, string> = {}) {
  const r = spawnSync("sh", ["-c", script], {
    input,
    encoding: "utf8",
    env: { PATH: `${bin}:${process.env.PATH}`, HOME: "/nonexistent", ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("asRoot", () => {
  it("is the script itself for root, byte for byte", () => {
    expect(asRoot(SCRIPT, "root")).toBe(SCRIPT);
    expect(bundleOwnedBy("root")).toBe("");
  });

  it("another user: the same script through sudo -n, with its stdin", () => {
    const direct = sh(SCRIPT, "the config");
    expect(direct).toMatchObject({ code: 0, stdout: "it's|the config|$HOME stays as written\n" });
    const wrapped = asRoot(SCRIPT, "deploy");
    expect(wrapped).toContain("exec sudo -n sh -c '");
    expect(sh(wrapped, "the config")).toEqual(direct);
  });

  it("sudo asking for a password: exit 1, naming the user and what to do", () => {
    const r = sh(asRoot(SCRIPT, "deploy"), "x", { REFUSE: "1" });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "SSH user deploy cannot run the gateway's steps as root with sudo -n (sudo: a password is required): give deploy passwordless sudo (NOPASSWD, a file in /etc/sudoers.d), or SSH as root\n",
    );
  });

  it("no sudo on the host: says so", () => {
    const r = spawnSync("/bin/sh", ["-c", asRoot(SCRIPT, "deploy")], {
      encoding: "utf8",
      env: { PATH: tempDir("empty-") },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      "SSH user deploy cannot run the gateway's steps as root: sudo is not installed",
    );
  });

  it("refuses a user name that is not one (it is written into the script)", () => {
    expect(() => asRoot(SCRIPT, "x; rm -rf /")).toThrow('sshUser "x; rm -rf /" is not a user name');
  });
});
