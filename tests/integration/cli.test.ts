import { spawn, spawnSync } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { createCa, issueLeaf, TEST_DOMAIN } from "../../testkit/certs.js";
import { freePort } from "../../testkit/process.js";
import { minimalConfig, withKey } from "../../testkit/config.js";
import { tempDir, tempFile as tempFileIn } from "../../testkit/tmp.js";
import { SEED_TOML } from "../helpers/seed.js";

// A copy outside the repository: the bundle must run with plain node and no node_modules near it.
const bundle = join(tempDir("bundle-"), "gateway.mjs");
copyFileSync(new URL("../../dist/gateway.mjs", import.meta.url).pathname, bundle);

function gateway(...args: string[]) {
  const r = spawnSync(process.execPath, [bundle, ...args], {
    encoding: "utf8",
    timeout: 15_000,
    cwd: tmpdir(),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tempFile = (name: string, text: string) => tempFileIn("cli-", name, text);

describe("gateway check-config (the bundle, run with plain node)", () => {
  it("prints the seed normalized, secrets redacted, and exits 0", () => {
    const r = gateway("check-config", SEED_TOML);
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout);
    expect(printed.core.wg.private_key).toBe("[redacted]");
    expect(printed.core.certbot.cf_api_token).toBe("[redacted]");
    expect(printed.core.proxy.timeouts.total).toBe("5h");
    expect(printed.core.admin.address).toBe("127.0.0.1");
    expect(r.stdout + r.stderr).not.toMatch(/gateway_private_key|your_cloudflare_token/);
  });

  it("notes each key that does nothing on stderr, and still exits 0", () => {
    const seed = gateway("check-config", SEED_TOML);
    expect(seed.code).toBe(0);
    const notes = seed.stderr.split("\n").filter((l) => l.startsWith("note: "));
    expect(notes.length).toBe(12);
    expect(notes).toContain(
      "note: core.run_in_dstack has no effect: dstack runs its gateway in a CVM (a TEE) beside a guest agent; this gateway runs on a host and asks no guest agent for anything",
    );
    const minimal = gateway(
      "check-config",
      tempFile("gateway.json", JSON.stringify(minimalConfig())),
    );
    expect(minimal).toMatchObject({ code: 0, stderr: "" });
    const raw = withKey(minimalConfig(), "max_blocking", 64);
    const one = gateway("check-config", tempFile("gateway.json", JSON.stringify(raw)));
    expect(one.code).toBe(0);
    expect(one.stderr).toMatch(/^note: max_blocking has no effect: [^\n]+\n$/);
    expect(JSON.parse(one.stdout).max_blocking).toBe(64);
  });

  it("prints TOML on request, which parses back", () => {
    const r = gateway("check-config", SEED_TOML, "--format", "toml");
    expect(r.code).toBe(0);
    expect((parseToml(r.stdout) as { port: number }).port).toBe(8000);
  });

  it("prints every problem and exits 2", () => {
    const file = tempFile(
      "bad.yaml",
      "port: 0\ncore:\n  proxy:\n    base_domain: localhost\n  wg:\n    private_key: hunter2-secret\n",
    );
    const r = gateway("check-config", file);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`invalid gateway config (${file})`);
    for (const line of [
      "  - port: expected a port number 1-65535, got 0",
      '  - core.proxy.base_domain: expected a DNS name of at least 2 labels (lowercase), got "localhost"',
      "  - core.rpc_domain: is required",
      "  - core.wg.public_key: is required",
      "  - core.wg.endpoint: is required",
      "  - core.auth.url: is required when core.auth.enabled is true",
    ]) {
      expect(r.stderr).toContain(line);
    }
    expect(r.stderr).not.toContain("hunter2-secret");
  });

  it("names a missing file and an unknown format", () => {
    expect(gateway("check-config", "/nonexistent/gateway.toml")).toMatchObject({ code: 2 });
    expect(gateway("check-config", "/nonexistent/gateway.toml").stderr).toContain(
      "(file): cannot read",
    );
    const ini = tempFile("gateway.ini", "port=1");
    expect(gateway("check-config", ini).stderr).toContain('unknown config format ".ini"');
  });

  describe("the files the config reads at start", () => {
    // certbot off, attestation "tdx": the gateway reads exactly the two certificate files.
    const dir = tempDir("cli-files-");
    const [chain, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
    const config = (keyFile: string) => {
      let raw = minimalConfig();
      for (const [k, v] of Object.entries({
        "core.attestation.mode": "tdx",
        "core.attestation.pccs_url": "https://pccs.test.example",
        "core.proxy.cert_chain": chain,
        "core.proxy.cert_key": keyFile,
      }))
        raw = withKey(raw, k, v);
      return tempFile("gateway.json", JSON.stringify(raw));
    };
    const missingKey = `  - core.proxy.cert_key: ${join(dir, "absent.pem")} is read by the gateway`;

    it("--shipped: every file read must be listed; a missing one names its key, exit 2", () => {
      expect(gateway("check-config", config(key), "--shipped", chain, "--shipped", key).code).toBe(
        0,
      );
      const r = gateway("check-config", config(join(dir, "absent.pem")), "--shipped", chain);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain("gateway config names files that will not be on the host");
      expect(r.stderr).toContain(missingKey);
      expect(r.stderr).not.toContain("core.proxy.cert_chain");
    });

    it("--on-host: every file read must exist here", () => {
      writeFileSync(chain, "x");
      writeFileSync(key, "x");
      expect(gateway("check-config", config(key), "--on-host").code).toBe(0);
      const r = gateway("check-config", config(join(dir, "absent.pem")), "--on-host");
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(missingKey);
    });

    describe("--on-host with core.proxy.engine haproxy: /usr/sbin/haproxy must be here", () => {
      const haproxyConfig = () => {
        writeFileSync(chain, "x");
        writeFileSync(key, "x");
        const raw = JSON.parse(readFileSync(config(key), "utf8"));
        return tempFile(
          "gateway.json",
          JSON.stringify(withKey(raw, "core.proxy.engine", "haproxy")),
        );
      };

      // .ci/run installs haproxy and the suite runs as root: neither is optional here.
      it("present: passes", () => {
        expect(existsSync("/usr/sbin/haproxy")).toBe(true);
        expect(gateway("check-config", haproxyConfig(), "--on-host").code).toBe(0);
      });

      // Hidden behind /dev/null in a mount namespace of its own (root only), so the check
      // sees it missing while this machine keeps it.
      it("absent: exit 2, naming the key", () => {
        const r = spawnSync(
          "unshare",
          [
            "-m",
            "sh",
            "-c",
            'mount --bind /dev/null /usr/sbin/haproxy && exec "$0" "$@"',
            process.execPath,
            bundle,
            "check-config",
            haproxyConfig(),
            "--on-host",
          ],
          { encoding: "utf8", timeout: 15_000, cwd: tmpdir() },
        );
        expect(r.status).toBe(2);
        expect(r.stderr).toContain(
          '  - core.proxy.engine: /usr/sbin/haproxy is run by the gateway (core.proxy.engine is "haproxy"',
        );
      });

      it("--shipped lists files, never packages: no program is checked there", () => {
        const file = haproxyConfig();
        expect(gateway("check-config", file, "--shipped", chain, "--shipped", key).code).toBe(0);
      });
    });

    it("without either, only the schema: a config for another machine passes", () => {
      expect(gateway("check-config", config(join(dir, "absent.pem"))).code).toBe(0);
      expect(gateway("check-config", config(key), "--on-host", "--shipped", key).code).toBe(64);
    });
  });

  it("has help for each command, and usage errors exit 64", () => {
    expect(gateway("--help")).toMatchObject({ code: 0 });
    expect(gateway("--help").stdout).toContain("check-config FILE");
    expect(gateway("check-config", "--help").stdout).toContain("Usage: gateway check-config FILE");
    expect(gateway("run", "--help").stdout).toContain("Usage: gateway run --config FILE");
    expect(gateway("check-config").code).toBe(64);
    expect(gateway("run").code).toBe(64);
    expect(gateway("frobnicate").code).toBe(64);
    expect(gateway("run", "--bogus").code).toBe(64);
  });

  it("refuses to run proxy-worker by hand (only `run` starts workers)", () => {
    const r = gateway("proxy-worker", "--config", "/nonexistent.toml");
    expect(r.code).toBe(64);
    expect(r.stderr).toContain("only the gateway's own `run` starts workers");
  });
});

describe("gateway run", () => {
  it("does not open the data plane when registration cannot start", async () => {
    // The happy path (WireGuard, registration, SIGHUP, SIGTERM) runs in network namespaces in
    // tests/e2e; here the registration part fails on purpose, outside any namespace. The data
    // plane starts after it (run.ts PARTS): a generation that cannot route never accepts.
    const ca = createCa();
    const leaf = issueLeaf(ca);
    const [https, http] = [await freePort(), await freePort()];
    let raw = minimalConfig();
    for (const [k, v] of Object.entries({
      "core.proxy.listen_addr": "127.0.0.1",
      "core.proxy.listen_port": https,
      "core.proxy.http_port": http,
      "core.proxy.cert_chain": leaf.certFile,
      "core.proxy.cert_key": leaf.keyFile,
      "core.proxy.base_domain": TEST_DOMAIN,
      "core.admin": { enabled: false },
      "core.attestation.ca_file": "/nonexistent/client-ca.pem",
    }))
      raw = withKey(raw, k, v);
    try {
      const r = await new Promise<{ code: number | null; log: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [bundle, "run", "--config", tempFile("gateway.json", JSON.stringify(raw))],
          {
            stdio: ["ignore", "pipe", "pipe"],
          },
        );
        let log = "";
        child.stderr.on("data", (d: Buffer) => (log += d.toString()));
        const guard = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.once("exit", (code) => {
          clearTimeout(guard);
          resolve({ code, log });
        });
      });
      expect(r.code).toBe(1);
      expect(r.log).not.toContain("data plane listening");
      expect(r.log).toContain("cannot read core.attestation.ca_file /nonexistent/client-ca.pem");
      expect(r.log).toContain('"private_key":"[redacted]"');
      const { private_key } = (raw.core as { wg: { private_key: string } }).wg;
      expect(r.log).not.toContain(private_key);
      // Its port was never taken.
      const probe = createServer();
      await new Promise<void>((resolve, reject) => {
        probe.once("error", reject);
        probe.listen(https, "127.0.0.1", () => resolve());
      });
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    } finally {
      ca.cleanup();
    }
  });

  it("names the missing certificate file and exits 1", () => {
    let raw = withKey(minimalConfig(), "core.proxy.cert_chain", "/nonexistent/cert.pem");
    raw = withKey(raw, "core.proxy.listen_addr", "127.0.0.1");
    const r = gateway("run", "--config", tempFile("gateway.json", JSON.stringify(raw)));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("/nonexistent/cert.pem");
  });

  it("refuses a bad config with exit 2 before starting anything", () => {
    const file = tempFile("bad.json", JSON.stringify({ port: "x" }));
    const r = gateway("run", "--config", file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('  - port: expected a port number 1-65535, got "x"');
  });
});

describe("the admin API fails closed (the bundle)", () => {
  it("refuses to start with the admin API on and no credentials, before any part starts", () => {
    let raw = withKey(minimalConfig(), "core.admin", { enabled: true });
    raw = withKey(raw, "core.proxy.listen_addr", "127.0.0.1");
    const r = gateway("run", "--config", tempFile("gateway.json", JSON.stringify(raw)));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("E_ADMIN_AUTH_REQUIRED");
    expect(r.stderr).not.toContain("starting TLS proxy");
  });

  it("gateway admin reads the token from the config and calls the API on its socket", async () => {
    const dir = tempDir("admin-cli-");
    const token = "cli-token-0123456789abcdef";
    const socket = join(dir, "admin.sock");
    const seen: {
      auth: string | undefined;
      path: string | undefined;
      method: string | undefined;
    }[] = [];
    // A stand-in for the gateway's admin API: the CLI's side of the wire is what is tested here.
    const api = createHttpServer((req, res) => {
      seen.push({ auth: req.headers.authorization, path: req.url, method: req.method });
      res.writeHead(req.headers.authorization === `Bearer ${token}` ? 200 : 401, {
        "content-type": "application/json",
      });
      res.end(JSON.stringify({ ok: req.headers.authorization === `Bearer ${token}` }));
    });
    await new Promise<void>((resolve) => api.listen(socket, resolve));
    try {
      const config = tempFile(
        "gateway.json",
        JSON.stringify(withKey(minimalConfig(), "core.admin", { auth_token: token, socket })),
      );
      const call = (...args: string[]) =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const child = spawn(process.execPath, [bundle, "admin", "--config", config, ...args]);
          let out = "";
          child.stdout.on("data", (d: Buffer) => (out += d.toString()));
          child.stderr.on("data", (d: Buffer) => (out += d.toString()));
          child.once("exit", (code) => resolve({ code, out }));
        });
      expect(await call("Status")).toEqual({ code: 0, out: '{"ok":true}\n' });
      expect((await call("GetInfo", '{"id":"ab"}')).code).toBe(0);
      expect((await call("RenewCert")).code).toBe(0);
      expect(seen).toEqual([
        { auth: `Bearer ${token}`, path: "/prpc/Admin.Status", method: "GET" },
        { auth: `Bearer ${token}`, path: "/prpc/Admin.GetInfo", method: "POST" },
        { auth: `Bearer ${token}`, path: "/prpc/Admin.RenewCert", method: "POST" },
      ]);
      expect(gateway("admin", "--config", config, "Status", "{not json").code).not.toBe(0);
    } finally {
      await new Promise<void>((resolve) => api.close(() => resolve()));
    }
  });
});
