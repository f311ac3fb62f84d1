/**
 * Every committed stack deploys a gateway that starts: for each host, the gateway.toml the
 * program sends it (read back from the plan) is checked by the built bundle's own
 * `check-config --shipped`, the command a host runs, against the files the planned steps of
 * that host actually write (read from their scripts, not from the list the program keeps). A
 * key naming a file nothing ships (the default attestation CA, say) is what fails the gateway
 * on the host while preview passes.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HOST_PATHS } from "../../../host/layout.js";
import { parseConfigText } from "../../../gateway-runtime/config/index.js";
import {
  allStacks,
  capturePlan,
  type PlannedResource,
  ROOT,
  stackConfig,
} from "../../../tools/plan/plan.js";

const work = mkdtempSync(join(tmpdir(), "stacks-start-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * The paths a host's planned steps leave files at: the copied bundle, and in the scripts each
 * `mv -f "$tmp" PATH`, `install ... "$tmp/N" PATH` and `cat > PATH` (how host/ writes files).
 */
function writtenPaths(steps: readonly PlannedResource[]): string[] {
  const paths = new Set<string>();
  const write = /^(?:mv -f "\$\w+"|install (?:-[mog] \S+ )*"\$[^"]+"|cat >) (\/[^\s;&|]+)/gm;
  for (const { inputs } of steps) {
    if (typeof inputs.remotePath === "string") paths.add(inputs.remotePath);
    if (typeof inputs.create !== "string") continue;
    for (const m of inputs.create.matchAll(write)) paths.add(m[1] as string);
  }
  return [...paths].sort();
}

/** A region stack's hosts: each one's planned config text and the paths its steps write. */
async function plannedHosts(stack: string) {
  const plan = await capturePlan(stack, { revealSecrets: true });
  const hosts = plan.resources.filter((r) => r.type === "gateway:index:GatewayHost");
  return hosts.map((host) => {
    const steps = plan.resources.filter((r) => r.parent === `${host.type}::${host.name}`);
    const toml = steps.find((r) => r.name === `${host.name}-config`)?.inputs.stdin;
    if (typeof toml !== "string") throw new Error(`${host.name}: no config step stdin`);
    return { name: host.name, toml, written: writtenPaths(steps) };
  });
}

/** `node dist/gateway.mjs check-config FILE --shipped ...`, the bundle the test setup built. */
function checkConfig(name: string, toml: string, shipped: readonly string[]) {
  const file = join(work, `${name}.toml`);
  writeFileSync(file, toml, { mode: 0o600 });
  const args = shipped.flatMap((p) => ["--shipped", p]);
  const r = spawnSync(
    process.execPath,
    [join(ROOT, "dist", "gateway.mjs"), "check-config", file, ...args],
    { encoding: "utf8", timeout: 15_000, cwd: work },
  );
  return { code: r.status, stderr: r.stderr };
}

describe("every committed stack: the bundle's check-config accepts each host's config with the files its steps write", () => {
  // The global stack deploys no gateway (the front door).
  it.each(allStacks().filter((s) => s !== "global"))("%s", async (stack) => {
    const hosts = await plannedHosts(stack);
    expect(hosts.length).toBeGreaterThan(0);
    for (const host of hosts) {
      // The steps write at least what every host has: the bundle and the config.
      expect(host.written).toEqual(expect.arrayContaining([HOST_PATHS.bundle, HOST_PATHS.config]));
      const r = checkConfig(host.name, host.toml, host.written);
      expect(r, `stack ${stack}, host ${host.name}`).toMatchObject({ code: 0 });
      expect(r.stderr).not.toContain("will not be on the host");
    }
  });

  it("a file the config reads and no step writes: exit 2, naming the key", async () => {
    // The lab stack ships its attestation CA (mode "ca"); leave that file out.
    const [host] = await plannedHosts("lab");
    if (!host) throw new Error("lab has no host");
    expect(parseConfigText(host.toml, "toml", "lab").core.attestation.ca_file).toBe(
      HOST_PATHS.attestationCa,
    );
    expect(host.written).toContain(HOST_PATHS.attestationCa);
    const r = checkConfig(
      host.name,
      host.toml,
      host.written.filter((p) => p !== HOST_PATHS.attestationCa),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `  - core.attestation.ca_file: ${HOST_PATHS.attestationCa} is read by the gateway`,
    );
  });
});

describe("preview fails on a file nothing ships", () => {
  /** The us stack with `gateway:config` changed by `edit` and extra program settings. */
  const us = (
    edit: (core: Record<string, unknown>) => void,
    extra: Record<string, string> = {},
  ) => {
    const { config, secretKeys } = stackConfig("us");
    const gateway = JSON.parse(config["gateway:config"] as string);
    edit(gateway.core);
    return {
      config: { ...config, ...extra, "gateway:config": JSON.stringify(gateway) },
      secretKeys,
    };
  };
  const CA = stackConfig("lab").config["gateway:attestationCaPem"] as string;

  it("mode ca without gateway:attestationCaPem: a RunError naming stack, host, key and path", async () => {
    const config = us((core) => {
      core.attestation = { mode: "ca" };
    });
    const failure = capturePlan("us", { config });
    // A RunError reaches the engine as its message alone; anything else as an unhandled exception with a stack.
    await expect(failure).rejects.not.toThrow(/unhandled exception/);
    await expect(failure).rejects.toThrow(
      "gateway config names files that will not be on the host (stack us, host gw1), 1 problem(s):\n" +
        "  - core.attestation.ca_file: /data/gateway/client-ca.pem is read by the gateway",
    );
  });

  it("acme_ca_file set by hand, not shipped; certbot off: the certificate files", async () => {
    await expect(
      capturePlan("us", {
        config: us((core) => {
          (core.certbot as Record<string, unknown>).acme_ca_file = "/etc/ssl/private-acme.pem";
        }),
      }),
    ).rejects.toThrow(
      "  - core.certbot.acme_ca_file: /etc/ssl/private-acme.pem is read by the gateway (CAs trusted for the ACME directory) but nothing ships it: set gateway:acmeCaPem instead",
    );
    await expect(
      capturePlan("us", {
        config: us((core) => {
          core.certbot = { enabled: false };
        }),
      }),
    ).rejects.toThrow(
      /core\.proxy\.cert_chain: \/var\/lib\/gateway\/certs\/live\/cert\.pem is read by the gateway .* nothing ships it: enable core\.certbot/,
    );
  });

  it("mode ca with gateway:attestationCaPem: the program ships the CA and points ca_file at it", async () => {
    const config = us(
      (core) => {
        core.attestation = { mode: "ca", ca_file: "/data/gateway/client-ca.pem" };
      },
      { "gateway:attestationCaPem": CA },
    );
    const plan = await capturePlan("us", { config, revealSecrets: true });
    const step = plan.resources.find((r) => r.name === "us-gw1-config");
    const toml = parseConfigText(step?.inputs.stdin as string, "toml", "us-gw1");
    expect(toml.core.attestation.ca_file).toBe("/etc/gateway/client-ca.pem");
    expect(step?.inputs.create).toContain('mv -f "$ca" /etc/gateway/client-ca.pem');
  });
});
