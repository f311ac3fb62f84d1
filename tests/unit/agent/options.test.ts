import { mkdtemp, readFile, rm, stat, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadOrCreateKey } from "../../../gateway-runtime/agent/key.js";
import { parseAgentArgs } from "../../../gateway-runtime/agent/options.js";
import { wgPublicKey } from "../../../gateway-runtime/keys/wireguard.js";

const REQUIRED = ["--gateway", "https://gw.example.com:8000", "--cert", "c.pem", "--key", "k.pem"];

describe("parseAgentArgs", () => {
  it("fills the defaults", () => {
    expect(parseAgentArgs(REQUIRED)).toEqual({
      kind: "run",
      options: {
        gateway: "https://gw.example.com:8000",
        certFile: "c.pem",
        keyFile: "k.pem",
        caFile: undefined,
        servername: undefined,
        interface: "dstack-wg0",
        wgKeyFile: "/var/lib/gateway-agent/wg.key",
        wgConfigFile: "/var/lib/gateway-agent/dstack-wg0.conf",
        listenPort: undefined,
        handshakeTimeoutMs: 180_000,
        handshakeWaitMs: 15_000,
        checkIntervalMs: 10_000,
        refreshIntervalMs: 600_000,
        requestTimeoutMs: 10_000,
        implementation: "auto",
        wireguardGo: "wireguard-go",
        logLevel: "info",
      },
    });
  });

  it("takes every option", () => {
    const parsed = parseAgentArgs([
      ...REQUIRED,
      ...["--ca", "ca.pem", "--servername", "rpc.example.com", "--interface", "wg7"],
      ...["--data-dir", "/tmp/a", "--listen-port", "9182", "--handshake-timeout", "4s"],
      ...["--handshake-wait", "1m", "--check-interval", "500ms", "--request-timeout", "2s"],
      ...["--refresh-interval", "0s"],
      ...["--implementation", "userspace", "--wireguard-go", "/bin/wg-go", "--log-level", "debug"],
    ]);
    expect(parsed).toMatchObject({
      kind: "run",
      options: {
        caFile: "ca.pem",
        servername: "rpc.example.com",
        interface: "wg7",
        wgKeyFile: "/tmp/a/wg.key",
        wgConfigFile: "/tmp/a/wg7.conf",
        listenPort: 9182,
        handshakeTimeoutMs: 4_000,
        handshakeWaitMs: 60_000,
        checkIntervalMs: 500,
        refreshIntervalMs: 0,
        requestTimeoutMs: 2_000,
        implementation: "userspace",
        wireguardGo: "/bin/wg-go",
        logLevel: "debug",
      },
    });
  });

  it.each([
    [["--cert", "c", "--key", "k"], "--gateway is required"],
    [["--gateway", "https://g", "--key", "k"], "--cert is required"],
    [[...REQUIRED.slice(2), "--gateway", "http://gw:8000"], "--gateway must be an https:// URL"],
    [[...REQUIRED.slice(2), "--gateway", "gw:8000"], "--gateway must be an https:// URL"],
    [[...REQUIRED.slice(2), "--gateway", "not a url"], "is not a URL"],
    [[...REQUIRED, "--interface=-x"], "--interface -x is not an interface name"],
    [[...REQUIRED, "--interface", "a-very-long-interface"], "is not an interface name"],
    [
      [...REQUIRED, "--handshake-timeout", "3"],
      '--handshake-timeout: expected a duration like "10s", got "3"',
    ],
    [[...REQUIRED, "--check-interval", "0s"], "--check-interval"],
    [
      [...REQUIRED, "--refresh-interval", "often"],
      '--refresh-interval: expected a duration like "10m" or "0s", got "often"',
    ],
    [[...REQUIRED, "--listen-port", "70000"], "--listen-port: expected 1-65535"],
    [
      [...REQUIRED, "--implementation", "bpf"],
      "--implementation: expected auto, kernel or userspace",
    ],
    [[...REQUIRED, "--log-level", "loud"], '--log-level: unknown level "loud"'],
  ])("%j is a usage error: %s", (argv, problem) => {
    const parsed = parseAgentArgs(argv);
    expect(parsed.kind).toBe("usage");
    expect(parsed.kind === "usage" && parsed.problem).toContain(problem);
  });

  it("answers --help, and throws parseArgs' error on unknown options", () => {
    expect(parseAgentArgs(["--help"])).toEqual({ kind: "help" });
    expect(() => parseAgentArgs([...REQUIRED, "--bogus"])).toThrow(
      expect.objectContaining({ code: "ERR_PARSE_ARGS_UNKNOWN_OPTION" }),
    );
  });
});

describe("loadOrCreateKey", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), "agent-key-"));
    dirs.push(d);
    return d;
  };

  it("makes a key once (0600 in a 0700 directory) and reads the same key afterwards", async () => {
    const file = join(await tempDir(), "state", "wg.key");
    const first = await loadOrCreateKey(file);
    expect(first.created).toBe(true);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(file, ".."))).mode & 0o777).toBe(0o700);
    const text = await readFile(file, "utf8");
    expect(wgPublicKey(text.trim())).toBe(first.publicKey);
    expect(JSON.stringify(first)).not.toContain(text.trim()); // the private key stays a Secret
    const again = await loadOrCreateKey(file);
    expect(again).toMatchObject({ created: false, publicKey: first.publicKey });
    expect(again.privateKey.reveal()).toBe(first.privateKey.reveal());
  });

  it("refuses a key others may read, and a file that is not a key", async () => {
    const dir = await tempDir();
    const open = join(dir, "open.key");
    await loadOrCreateKey(open);
    await chmod(open, 0o644);
    await expect(loadOrCreateKey(open)).rejects.toMatchObject({
      code: "E_AGENT_KEY",
      message: expect.stringContaining("has mode 0644: others may read it"),
    });
    const junk = join(dir, "junk.key");
    await writeFile(junk, "hello\n", { mode: 0o600 });
    await expect(loadOrCreateKey(junk)).rejects.toMatchObject({
      code: "E_AGENT_KEY",
      message: `${junk} does not hold a WireGuard private key`,
    });
  });
});
