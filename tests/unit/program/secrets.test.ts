import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { AcmeAccount } from "../../../components/acme-account.js";
import { GatewayHost } from "../../../components/gateway-host.js";
import { HOST_PATHS } from "../../../host/layout.js";
import { WireGuardKey } from "../../../components/wireguard-key.js";
import { allStacks, capturePlan, keyOf, type Plan } from "../../../tools/plan/plan.js";
import { planMocks } from "../../helpers/pulumi-mocks.js";

/** Every string leaf of a plan, with the resource and input path it sits at. */
function stringLeaves(plan: Plan): { at: string; text: string }[] {
  const out: { at: string; text: string }[] = [];
  const walk = (value: unknown, at: string) => {
    if (typeof value === "string") out.push({ at, text: value });
    else if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) walk(v, `${at}.${k}`);
    }
  };
  for (const r of plan.resources) walk(r.inputs, keyOf(r));
  return out;
}

/** The secret values a stack's host receives: stand-ins for its `secure:` config, and generated keys. */
async function secretValues(stack: string): Promise<string[][]> {
  const revealed = await capturePlan(stack, { revealSecrets: true });
  const toml = String(
    revealed.resources.find((r) => r.name === `${stack}-gw1-config`)?.inputs.stdin,
  );
  const generated = [...toml.matchAll(/^(?:private_key|account_key) = "(.+)"$/gm)].map((m) =>
    JSON.parse(`"${m[1]}"`),
  );
  // The etcd keys: every host's member key and the gateways' client key (the TLS steps' stdin),
  // and the CA's key (an input of each certificate it signs).
  const etcdKeys = revealed.resources.flatMap((r) =>
    [r.inputs.caKeyPem, r.name.endsWith("-etcd-tls") ? r.inputs.stdin : undefined].flatMap(
      (v) =>
        String(v ?? "").match(/-----BEGIN PRIVATE KEY-----\n[^-]+-----END PRIVATE KEY-----\n/g) ??
        [],
    ),
  );
  generated.push(...new Set(etcdKeys));
  const standIns = [
    ...new Set(
      stringLeaves(revealed).flatMap((l) => l.text.match(/stand-in-secret\([^)]*\)/g) ?? []),
    ),
  ];
  // Each as it is and as it appears inside a TOML or JSON string (newlines escaped).
  return [...generated, ...standIns].map((v) => [v, JSON.stringify(v).slice(1, -1)]);
}

describe("secrets stay secret", () => {
  it.each(allStacks())("%s: no secret value appears anywhere in the masked plan", async (stack) => {
    const secrets = await secretValues(stack);
    // WireGuard private key, ACME account key, and the stack's secure: values (both spellings);
    // eu runs etcd: the CA's key, three members' and the gateways' client key.
    // global (the front door) holds only the Cloudflare token, a provider setting, no resource input.
    expect(secrets.length).toBe({ lab: 3, eu: 4 + 5, global: 0 }[stack] ?? 4);
    const masked = await capturePlan(stack);
    const leaks = stringLeaves(masked).filter((l) =>
      secrets.flat().some((s) => l.text.includes(s)),
    );
    expect(leaks).toEqual([]);
  });

  it("us: secret values reach only the config stdin and the SSH connection, never command text", async () => {
    const secrets = await secretValues("us");
    const revealed = await capturePlan("us", { revealSecrets: true });
    const where = stringLeaves(revealed)
      .filter((l) => secrets.flat().some((s) => l.text.includes(s)))
      .map((l) => l.at)
      .sort();
    const commands = ["config", "restart", "setup", "unit"].map(
      (s) => `command:remote:Command::us-gw1-${s}.connection.privateKey`,
    );
    expect(where).toEqual([
      "command:remote:Command::us-gw1-config.connection.privateKey",
      "command:remote:Command::us-gw1-config.stdin",
      ...commands.slice(1),
      "command:remote:CopyToRemote::us-gw1-bundle.connection.privateKey",
    ]);
    const stdin = revealed.resources.find((r) => r.name === "us-gw1-config")?.inputs.stdin;
    const inStdin = secrets.map((forms) => forms.some((f) => String(stdin).includes(f)));
    // Everything but the SSH key is in the host's config.
    const isSshKey = secrets.map((forms) => forms[0] === "stand-in-secret(gateway:sshPrivateKey)");
    expect(isSshKey.filter(Boolean)).toEqual([true]);
    expect(inStdin).toEqual(isSshKey.map((ssh) => !ssh));
  });

  it("outputs holding secrets are Pulumi secrets; public keys and scripts are not", async () => {
    await pulumi.runtime.setMocks(planMocks("secrets"), "cvm-tls-gateway", "secrets", false);
    const key = new WireGuardKey("k");
    const account = new AcmeAccount("a", {
      directoryUrl: "https://acme-staging-v02.api.letsencrypt.org/directory",
      email: "ops@example.com",
    });
    const host = new GatewayHost("h", {
      address: "192.0.2.1",
      sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----",
      configToml: 'log_level = "info"\n',
      layout: {
        tlsPort: 443,
        tlsAddress: "0.0.0.0",
        rpcPort: 8000,
        wireguardPort: 51820,
        sshPort: 22,
        writablePaths: ["/var/lib/gateway"],
      },
      bundleSha256: "0".repeat(64),
    });
    const secret = (o: pulumi.Output<unknown>) => pulumi.isSecret(o);
    expect(await secret(key.privateKey)).toBe(true);
    expect(await secret(key.publicKey)).toBe(false);
    expect(await secret(account.accountKey)).toBe(true);
    expect(await secret(account.accountUrl)).toBe(false);
    expect(await secret(host.config.stdin)).toBe(true);
    expect(await secret(host.config.connection)).toBe(true);
    expect(await secret(host.setup.create)).toBe(false);
    expect(await secret(host.config.create)).toBe(false);
    const script = await new Promise<string | undefined>((resolve) =>
      host.config.create.apply(resolve),
    );
    expect(script).not.toContain("log_level");
    expect(script).toContain(`mv -f "$tmp" ${HOST_PATHS.config}`);
  });
});
