import { socketUnits } from "../../../host/sockets.js";
import { HOST_CONFIG } from "../../../gateway-runtime/cli/admin.js";
import { execFile } from "node:child_process";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import {
  configScript,
  firewallRules,
  hostFiles,
  setupScript,
  shippedFiles,
  sysctlFile,
  unitFile,
} from "../../../host/files.js";
import { restartScript } from "../../../host/restart.js";
import {
  HOST_PATHS,
  heredoc,
  hostLayout,
  NODE_MAJOR,
  outermostPaths,
  probeAddress,
} from "../../../host/layout.js";
import { loadStackFile } from "../../../components/stack-config.js";
import { tempDir, tempFile } from "../../../testkit/tmp.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const us = hostLayout(loadStackFile(`${ROOT}stacks/Pulumi.us.yaml`));
const run = promisify(execFile);

describe("host layout from a stack's gateway config", () => {
  it("us: public ports, the local-only admin port, one writable tree", () => {
    expect(us).toEqual({
      tlsPort: 443,
      tlsAddress: "0.0.0.0",
      httpPort: 80,
      rpcPort: 8000,
      rpcAddress: "0.0.0.0",
      wireguardPort: 51820,
      adminPort: 8001,
      sshPort: 22,
      writablePaths: ["/var/lib/gateway"],
      // The committed stacks run the HAProxy engine, as new stacks do.
      haproxy: true,
    });
  });

  it.each([
    [
      ["/var/lib/gateway", "/var/lib/gateway/certs", "/var/lib/gateway/wireguard"],
      ["/var/lib/gateway"],
    ],
    [
      ["/data", "/data/certs", "/srv/wg"],
      ["/data", "/srv/wg"],
    ],
    [
      ["/var/lib/gw", "/var/lib/gateway"],
      ["/var/lib/gateway", "/var/lib/gw"],
    ],
  ])("outermostPaths(%j) = %j", (paths, expected) => {
    expect(outermostPaths(paths)).toEqual(expected);
  });

  it("refuses to hand the service a system directory or a path unsafe in a script", () => {
    const config = loadStackFile(`${ROOT}stacks/Pulumi.us.yaml`);
    const bad = (state_path: string) => () =>
      hostLayout({ ...config, core: { ...config.core, state_path } });
    expect(bad("/etc/state.json")).toThrow(
      'core.state_path: the service would own and write "/etc": use a directory of its own such as /var/lib/gateway',
    );
    expect(bad("/var/lib/state.json")).toThrow('would own and write "/var/lib"');
    expect(bad("/var/lib/gw $(reboot)/s.json")).toThrow("core.state_path");
  });

  it.each([
    ["0.0.0.0", "127.0.0.1"],
    ["::", "::1"],
    ["198.51.100.7", "198.51.100.7"],
  ])("readiness probe for listen address %s dials %s", (tlsAddress, expected) => {
    expect(probeAddress({ ...us, tlsAddress })).toBe(expected);
  });
});

describe("firewall", () => {
  it("opens TLS, http, RPC, WireGuard and SSH; drops the admin port unless local", () => {
    const rules = firewallRules(us).split("\n");
    expect(rules.filter((l) => /dport \d/.test(l)).map((l) => l.trim())).toEqual([
      'tcp dport 22 accept comment "ssh"',
      'tcp dport 443 accept comment "TLS proxy"',
      'tcp dport 80 accept comment "http redirect"',
      'tcp dport 8000 accept comment "registration RPC"',
      'udp dport 51820 accept comment "WireGuard"',
      'tcp dport 8001 counter drop comment "admin API: this host only"',
    ]);
    expect(rules.slice(2, 7)).toEqual([
      "table inet gateway",
      "delete table inet gateway",
      "table inet gateway {",
      "\tchain input {",
      "\t\ttype filter hook input priority filter; policy drop;",
    ]);
    expect(rules.indexOf('\t\tiif "lo" accept')).toBeLessThan(
      rules.findIndex((l) => l.includes("8001")),
    );
    const { httpPort: _redirect, ...noRedirect } = us;
    expect(firewallRules(noRedirect)).toContain("dport 443 ");
    expect(firewallRules(noRedirect)).not.toContain("dport 80 ");
  });

  // CI installs nftables and systemd (.ci/run): a missing tool fails these tests, never skips them.
  it("is valid nftables syntax (nft -c)", async () => {
    expect(existsSync("/usr/sbin/nft"), "nft missing: apt-get install nftables").toBe(true);
    const file = tempFile("nft-", "gateway.nft", firewallRules(us));
    await expect(run("nft", ["-c", "-f", file])).resolves.toBeDefined();
  });
});

describe("systemd unit", () => {
  const lines = unitFile(us).split("\n");
  it("is hardened: two capabilities, read-only system, writes only its state", () => {
    for (const line of [
      "User=gateway",
      "ExecStart=/usr/bin/env node --single-threaded-gc /opt/gateway/gateway.mjs run --config /etc/gateway/gateway.toml --ready-file /run/gateway/ready",
      "ExecReload=/bin/kill -HUP $MAINPID",
      "Restart=on-failure",
      "LimitNOFILE=524288",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ReadWritePaths=/var/lib/gateway",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_ADMIN",
      "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_ADMIN",
      "DeviceAllow=/dev/net/tun rw",
    ]) {
      expect(lines).toContain(line);
    }
    expect(lines.filter((l) => l.startsWith("ReadWritePaths="))).toHaveLength(1);
    expect(lines.filter((l) => /Capabilit/.test(l))).toHaveLength(2);
  });

  it("passes systemd-analyze verify", async () => {
    expect(
      existsSync("/usr/bin/systemd-analyze"),
      "systemd-analyze missing: apt-get install systemd",
    ).toBe(true);
    const dir = tempDir("unit-");
    const file = join(dir, "gateway.service");
    writeFileSync(file, unitFile(us));
    for (const u of socketUnits(us)) writeFileSync(join(dir, u.name), u.text);
    const { stderr } = await run("systemd-analyze", ["verify", file]);
    expect(stderr).toBe("");
  });
});

describe("host scripts", () => {
  const files = hostFiles({
    layout: us,
    acmeCaPem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
  });

  it.each(["setup", "unitScript", "configScript", "restart"] as const)(
    "%s is POSIX sh that dash parses",
    async (name) => {
      const file = tempFile("sh-", `${name}.sh`, files[name]);
      await expect(run("dash", ["-n", file])).resolves.toBeDefined();
      expect(files[name].startsWith("#!/bin/sh\nset -eu\n")).toBe(true);
    },
  );

  it("setup installs the chosen Node major when node is missing or older, and makes 0700 service directories", () => {
    const setup = setupScript(us);
    expect(NODE_MAJOR).toBe(26);
    expect(setup).toContain('if [ "$node_major" -lt 26 ]; then');
    expect(setup).toContain("https://deb.nodesource.com/node_26.x nodistro main");
    // A node shadowing the installed one (e.g. in /usr/local/bin) fails the setup, not the service.
    expect(setup).toContain('[ "$node_major" -ge 26 ] || {');
    expect(setupScript(us, 28)).toContain('if [ "$node_major" -lt 28 ]; then');
    expect(setup).toContain(
      "apt_install ca-certificates curl gnupg iproute2 nftables wireguard-tools",
    );
    expect(setup).toContain("  apt_install wireguard-go");
    expect(setup).toContain(
      "install -d -m 0700 -o gateway -g gateway /etc/gateway /var/lib/gateway\n",
    );
    expect(() => setupScript(us, 24)).toThrow("nodeMajor must be an integer >= 26, got 24");
  });

  it("setup installs haproxy and masks its packaged service only for the haproxy engine", () => {
    expect(setupScript({ ...us, haproxy: false })).not.toContain("haproxy");
    const setup = setupScript(us);
    expect(setup).toContain("apt_install haproxy\n");
    expect(setup).toContain("systemctl mask haproxy.service");
  });

  it("setup writes the kernel settings to sysctl.d for boot and applies them at once", () => {
    const setup = setupScript(us);
    expect(sysctlFile()).toContain("\nnet.ipv4.tcp_tw_reuse = 1\n");
    expect(setup).toContain(
      `cat > /etc/sysctl.d/60-gateway.conf <<'GATEWAY_SYSCTL'\n${sysctlFile()}GATEWAY_SYSCTL\n`,
    );
    expect(setup).toContain(
      '\necho 1 2>/dev/null > /proc/sys/net/ipv4/tcp_tw_reuse || echo "warning: could not set net.ipv4.tcp_tw_reuse = 1 (read-only /proc/sys?): ',
    );
  });

  it("config: stdin to a 0600 temp file, checked by the runtime, then moved into place", () => {
    const script = configScript().split("\n");
    expect(script.slice(1, 6)).toEqual([
      "set -eu",
      "umask 077",
      "tmp=$(mktemp --suffix=.toml /etc/gateway/.gateway-new.XXXXXX)",
      "trap 'rm -f \"$tmp\"' EXIT",
      'cat > "$tmp"',
    ]);
    expect(script).toContain(
      'if ! problems=$(node /opt/gateway/gateway.mjs check-config --on-host "$tmp" 2>&1 >/dev/null); then',
    );
    expect(script).toContain('mv -f "$tmp" /etc/gateway/gateway.toml');
    expect(files.configScript).toContain(
      "cat > \"$ca\" <<'GATEWAY_PEM'\n-----BEGIN CERTIFICATE-----\nMIIB\n",
    );
    expect(() => configScript("not a pem")).toThrow(
      "acmeCaPem must be PEM CERTIFICATE blocks only",
    );
  });

  it("config: ships the CVM client CA next to the config when the stack gives one", () => {
    const pem = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----";
    const script = configScript(undefined, pem);
    expect(script).toContain("cat > \"$ca\" <<'GATEWAY_PEM'\n-----BEGIN CERTIFICATE-----\nMIIC\n");
    expect(script).toContain('mv -f "$ca" /etc/gateway/client-ca.pem');
    expect(script).not.toContain("/etc/gateway/acme-ca.pem");
    expect(() => configScript(undefined, "nope")).toThrow(
      "attestationCaPem must be PEM CERTIFICATE blocks only",
    );
  });

  it("shippedFiles lists exactly the files the steps write (the bundle is GatewayHost's copy)", () => {
    const pem = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----";
    const written = (script: string) =>
      [...script.matchAll(/^(?:mv -f "\$\w+"|cat >) (\/[^\s]+)/gm)].map((m) => m[1]);
    for (const [acmeCa, attestationCa] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const files = hostFiles({
        layout: us,
        ...(acmeCa ? { acmeCaPem: pem } : {}),
        ...(attestationCa ? { attestationCaPem: pem } : {}),
      });
      const steps = [files.setup, files.unitScript, files.configScript];
      expect(shippedFiles({ acmeCa, attestationCa }).sort()).toEqual(
        [HOST_PATHS.bundle, ...steps.flatMap(written)].sort(),
      );
    }
  });

  it("heredocs refuse content that would end them early", () => {
    expect(heredoc("a\nb", "EOF")).toBe("<<'EOF'\na\nb\nEOF");
    expect(() => heredoc("a\nEOF\nb", "EOF")).toThrow("here-document delimiter EOF");
  });
});

describe("restart with a bounded readiness wait (run for real, systemctl and journalctl faked)", () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  async function runRestart(port: number, timeout: number) {
    const bin = tempDir("fakebin-");
    // The fake unit's new main process is pid 42; "restart" makes it write its ready file.
    const ready = join(bin, "ready");
    writeFileSync(
      join(bin, "systemctl"),
      `#!/bin/sh\necho "systemctl $*" >&2\ncase "$1" in restart) echo 42 > ${ready} ;; show) echo 42 ;; esac\n`,
    );
    writeFileSync(join(bin, "journalctl"), "#!/bin/sh\necho 'gateway[1]: listen EADDRINUSE'\n");
    chmodSync(join(bin, "systemctl"), 0o755);
    chmodSync(join(bin, "journalctl"), 0o755);
    const script = restartScript({ ...us, tlsPort: port }, timeout, ready);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    return run("sh", ["-c", script], { env }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  }

  it("completes as soon as the TLS port accepts connections", async () => {
    server = createServer((s) => s.destroy()).listen(0, "127.0.0.1");
    await new Promise((r) => server?.once("listening", r));
    const port = (server.address() as { port: number }).port;
    const result = await runRestart(port, 10);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `waiting up to 10 s for the new gateway generation to serve on 127.0.0.1 port ${port}\ngateway is up\n`,
    );
  });

  it("gives up after the bound and prints the unit's status and last log lines", async () => {
    const started = performance.now();
    const result = await runRestart(1, 2);
    expect(result.code).toBe(1);
    expect(performance.now() - started).toBeLessThan(8_000);
    // Each round asks for the main pid and whether the unit is active: left out here.
    const lines = result.stderr.split("\n").filter((l) => !/^systemctl (show|is-active) /.test(l));
    expect(lines).toEqual([
      "systemctl restart gateway.service",
      "the new gateway generation did not serve on 127.0.0.1 port 1 within 2 s",
      "systemctl status gateway.service --no-pager",
      "last log lines:",
      "gateway[1]: listen EADDRINUSE",
      "",
    ]);
  }, 15_000);
});

describe("the host's paths the runtime knows too", () => {
  it("`gateway admin` reads the config where the program installs it", () => {
    expect(HOST_CONFIG).toBe(HOST_PATHS.config);
  });
});
