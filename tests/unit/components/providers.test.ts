import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { Agent } from "node:https";
import { createRequire } from "node:module";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acmeAccountProvider } from "../../../components/acme-account.js";
import { wireGuardKeyProvider } from "../../../components/wireguard-key.js";
import { isWgKey, wgPublicKey } from "../../../gateway-runtime/keys/wireguard.js";
import { compileProgram } from "./compiled.js";

const FAKE_ACME = new URL("./fixtures/fake-acme-client.cjs", import.meta.url).pathname;
const fake = createRequire(import.meta.url)(FAKE_ACME) as {
  calls: unknown[][];
  accounts: Map<string, string>;
  axios: { defaults: { httpsAgent?: Agent } };
};
const DIRECTORY = "https://127.0.0.1:14000/dir";
const inputs = { directoryUrl: DIRECTORY, email: "lab@gw.lab.test", caPem: "", accountKey: "" };
const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

let compiled: string;
beforeAll(async () => {
  compiled = await compileProgram();
});
afterAll(() => rmSync(compiled, { recursive: true, force: true }));

describe("WireGuardKey provider", () => {
  it("creates an X25519 pair with the runtime's generator; the id is the public key", async () => {
    const provider = wireGuardKeyProvider(join(compiled, "bin/gateway-runtime/keys/wireguard.js"));
    const { id, outs } = await provider.create({ rotation: "" });
    expect(outs?.rotation).toBe("");
    expect(isWgKey(outs?.privateKey ?? "")).toBe(true);
    expect(wgPublicKey(outs?.privateKey ?? "")).toBe(outs?.publicKey);
    expect(id).toBe(outs?.publicKey);
    const again = await provider.create({ rotation: "" });
    expect(again.outs?.privateKey).not.toBe(outs?.privateKey);
  });

  it.each([
    ["", "", { changes: false, replaces: [] }],
    ["2026-01", "2026-01", { changes: false, replaces: [] }],
    ["", "2026-01", { changes: true, replaces: ["rotation"] }],
    ["2026-01", "2026-02", { changes: true, replaces: ["rotation"] }],
  ])("diff rotation %j -> %j", async (before, after, expected) => {
    const olds = { rotation: before, publicKey: "p", privateKey: "k" };
    expect(await wireGuardKeyProvider().diff?.("id", olds, { rotation: after })).toEqual(expected);
  });
});

describe("AcmeAccount provider (acme-client's API, faked: no CA runs here)", () => {
  it("registers a new P-256 account with contact and terms; a known key finds the same account", async () => {
    fake.calls.length = 0;
    const provider = acmeAccountProvider(FAKE_ACME);
    const created = await provider.create(inputs);
    const url = created.outs?.accountUrl;
    expect(created.id).toBe(url);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:14000\/acme\/acct\/\d+$/);
    expect(created.outs?.accountKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(created.outs).toEqual({
      ...inputs,
      accountKey: created.outs?.accountKey,
      accountUrl: url,
    });
    const terms = { termsOfServiceAgreed: true, contact: ["mailto:lab@gw.lab.test"] };
    expect(fake.calls).toEqual([
      ["createPrivateEcdsaKey", "P-256"],
      ["new Client", { directoryUrl: DIRECTORY, accountUrl: undefined }],
      ["createAccount", "registered", terms],
    ]);

    fake.calls.length = 0;
    const found = await provider.create({ ...inputs, accountKey: created.outs?.accountKey ?? "" });
    expect(found.outs?.accountUrl).toBe(url);
    expect(found.outs?.accountKey).toBe(created.outs?.accountKey);
    expect(fake.calls).toEqual([
      ["new Client", { directoryUrl: DIRECTORY, accountUrl: undefined }],
      ["createAccount", "found", terms],
      ["updateAccount", url, terms],
    ]);
  });

  it("trusts an extra CA for the directory only when given one", async () => {
    const provider = acmeAccountProvider(FAKE_ACME);
    await provider.create({ ...inputs, caPem: CA_PEM });
    const agent = fake.axios.defaults.httpsAgent;
    expect(agent).toBeInstanceOf(Agent);
    const ca = (agent as Agent & { options: { ca: string[] } }).options.ca;
    expect(ca.at(-1)).toBe(CA_PEM);
    expect(ca.length).toBeGreaterThan(100); // the system roots stay trusted
    await provider.create(inputs);
    expect(fake.axios.defaults.httpsAgent).toBeUndefined();
  });

  it.each([
    ["nothing", {}, { changes: false, replaces: [] }],
    ["the contact", { email: "ops@example.com" }, { changes: true, replaces: [] }],
    ["the CA trust", { caPem: CA_PEM }, { changes: true, replaces: [] }],
    [
      "the directory",
      { directoryUrl: "https://acme-v02.api.letsencrypt.org/directory" },
      { changes: true, replaces: ["directoryUrl"] },
    ],
    ["the imported key", { accountKey: "other" }, { changes: true, replaces: ["accountKey"] }],
  ])("diff when changing %s", async (_what, change, expected) => {
    const olds = { ...inputs, accountKey: "generated", accountUrl: `${DIRECTORY}/acct/1` };
    const news = { ...inputs, ...change };
    expect(await acmeAccountProvider(FAKE_ACME).diff?.("id", olds, news)).toEqual(expected);
  });

  it("update: a new contact goes to the existing account URL, without registering", async () => {
    fake.calls.length = 0;
    const olds = { ...inputs, accountKey: "k", accountUrl: "https://127.0.0.1:14000/acme/acct/7" };
    const news = { ...inputs, email: "ops@example.com" };
    const updated = await acmeAccountProvider(FAKE_ACME).update?.("id", olds, news);
    expect(updated).toEqual({ outs: { ...olds, email: "ops@example.com" } });
    expect(fake.calls).toEqual([
      ["new Client", { directoryUrl: DIRECTORY, accountUrl: olds.accountUrl }],
      ["updateAccount", olds.accountUrl, { contact: ["mailto:ops@example.com"] }],
    ]);
  });
});

describe("dynamic providers survive Pulumi's serialization", () => {
  it("serialized as a real run does, and run in a CommonJS host like Pulumi's dynamic provider", async () => {
    const script = join(compiled, "host.mjs");
    writeFileSync(
      script,
      `import * as pulumi from "@pulumi/pulumi";
import requireFromString from "require-from-string";
const { wireGuardKeyProvider } = await import("./bin/components/wireguard-key.js");
const { acmeAccountProvider } = await import("./bin/components/acme-account.js");
const host = async (provider) => {
  // What pulumi.dynamic.Resource stores in __provider, and what its provider host loads.
  const sf = await pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
  return { text: sf.text, provider: requireFromString(sf.text).handler() };
};
const { etcdCaProvider, etcdCertificateProvider } = await import("./bin/components/etcd-pki.js");
const wg = await host(wireGuardKeyProvider());
const acme = await host(acmeAccountProvider(process.argv[2]));
const etcdCa = await host(etcdCaProvider());
const etcdCert = await host(etcdCertificateProvider());
const key = await wg.provider.create({ rotation: "r1" });
const account = await acme.provider.create(${JSON.stringify(inputs)});
const ca = (await etcdCa.provider.create({ commonName: "ca" })).outs;
const leaf = await etcdCert.provider.create({
  caCertPem: ca.certPem, caKeyPem: ca.keyPem, commonName: "gw1", dnsNames: [], ips: ["192.0.2.1"], usage: "member",
});
const texts = [wg.text, acme.text, etcdCa.text, etcdCert.text];
process.stdout.write(JSON.stringify({ key, account, ca, leaf: leaf.outs, texts }));
`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, [script, FAKE_ACME], {
      cwd: compiled,
    });
    const out = JSON.parse(stdout) as {
      key: { id: string; outs: { privateKey: string; publicKey: string; rotation: string } };
      account: { id: string; outs: { accountUrl: string } };
      ca: { certPem: string };
      leaf: { certPem: string };
      texts: string[];
    };
    expect(out.key.outs.rotation).toBe("r1");
    expect(wgPublicKey(out.key.outs.privateKey)).toBe(out.key.outs.publicKey);
    expect(out.key.id).toBe(out.key.outs.publicKey);
    expect(out.account.id).toBe("https://127.0.0.1:14000/acme/acct/1");
    expect(out.account.outs.accountUrl).toBe(out.account.id);
    expect(
      new X509Certificate(out.leaf.certPem).verify(new X509Certificate(out.ca.certPem).publicKey),
    ).toBe(true);
    // Only the module paths are captured: no module bindings, no transformed code.
    expect(out.texts[0]).toContain(
      JSON.stringify(join(compiled, "bin/gateway-runtime/keys/wireguard.js")),
    );
    for (const text of out.texts) {
      expect(text).not.toMatch(/__vite|__vi_|require\("\.\//);
      expect(text.length).toBeLessThan(8_000);
    }
  }, 30_000);
});
