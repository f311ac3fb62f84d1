import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configDigest, hostFiles, UNIT_DELETE } from "../../../host/files.js";
import { hostLayout, sha256 } from "../../../host/layout.js";
import { loadStackFile } from "../../../components/stack-config.js";
import { GATEWAY_REGION_TYPE } from "../../../components/gateway-region.js";
import {
  allStacks,
  capturePlan,
  diffPlans,
  keyOf,
  type Plan,
  planJson,
  ROOT,
  BUNDLE_HASH,
  stackConfig,
} from "../../../tools/plan/plan.js";

const plans = new Map<string, Plan>();
async function plan(stack: string): Promise<Plan> {
  let p = plans.get(stack);
  if (!p) {
    p = await capturePlan(stack);
    plans.set(stack, p);
  }
  return p;
}
const byName = (p: Plan, name: string) => {
  const found = p.resources.find((r) => r.name === name);
  if (!found) throw new Error(`no resource ${name} in the ${p.stack} plan`);
  return found;
};
const shape = (p: Plan) => p.resources.map((r) => `${keyOf(r)} < ${r.parent ?? "(root)"}`);

const DNS = "cloudflare:index/dnsRecord:DnsRecord";
/** The id the plans' stand-in Cloudflare account gives a zone looked up by name. */
const zoneIdOf = (name: string) => sha256(`zone:${name}`).slice(0, 32);
const CMD = "command:remote:Command";
const DYN = "pulumi-nodejs:dynamic/gateway";
/** The graph of a region; `etcd`: the program runs a member on each host, with its own CA. */
function regionShape(
  region: string,
  records: string[],
  opts: { acme?: boolean; hosts?: string[]; etcd?: boolean } = {},
) {
  const { acme = true, hosts = ["gw1"], etcd = false } = opts;
  // Several hosts roll out one at a time: a drain and a gate step each (host/rollout.ts).
  const rolling = hosts.length > 1;
  const top = `${GATEWAY_REGION_TYPE}::${region}`;
  const steps = [
    "config",
    ...(rolling ? ["drain"] : []),
    ...(etcd ? ["etcd-restart", "etcd-tls", "etcd-unit"] : []),
    ...(rolling ? ["gate"] : []),
  ];
  const host = (h: string) => `gateway:index:GatewayHost::${region}-${h}`;
  const hostSteps = (h: string) =>
    [...steps, "restart", "setup", "unit"].map((s) => `${CMD}::${region}-${h}-${s} < ${host(h)}`);
  return [
    ...records.map((r) => `${DNS}::${region}-dns-${r} < gateway:index:GatewayDns::${region}-dns`),
    ...hosts.flatMap(hostSteps),
    ...hosts.map((h) => `command:remote:CopyToRemote::${region}-${h}-bundle < ${host(h)}`),
    `${top} < (root)`,
    ...(records.length > 0 ? [`gateway:index:GatewayDns::${region}-dns < ${top}`] : []),
    ...hosts.map((h) => `gateway:index:GatewayHost::${region}-${h} < ${top}`),
    ...(acme ? [`${DYN}:AcmeAccount::${region}-acme < ${top}`] : []),
    `${DYN}:AdminToken::${region}-admin-token < ${top}`,
    ...(etcd ? [`${DYN}:EtcdCa::${region}-etcd-ca < ${top}`] : []),
    ...(etcd ? [`${DYN}:EtcdCertificate::${region}-etcd-client < ${top}`] : []),
    ...(etcd
      ? hosts.map((h) => `${DYN}:EtcdCertificate::${region}-${h}-etcd-member < ${top}`)
      : []),
    ...hosts.map((h) => `${DYN}:WireGuardKey::${region}-${h}-wg < ${top}`),
  ];
}
const dualStack = ["apex-a-gw1", "apex-aaaa-gw1"];
const rest = ["rpc-a-gw1", "rpc-aaaa-gw1", "wildcard-a-gw1", "wildcard-aaaa-gw1"];

describe("offline plans: the resource graph per stack", () => {
  it("finds the four stacks", () => {
    expect(allStacks()).toEqual(["asia", "eu", "global", "lab", "us"]);
  });

  it("us: one host with IPv6, Cloudflare DNS, one custom domain", async () => {
    expect(shape(await plan("us"))).toEqual(
      regionShape("us", [
        ...dualStack,
        "app-shop-example-org",
        "caa-issue",
        "caa-issuewild",
        ...rest,
      ]),
    );
  });

  it("eu: three hosts with IPv6 sharing the etcd the program runs on them, one custom domain", async () => {
    const hosts = ["gw1", "gw2", "gw3"];
    const each = (names: string[]) => names.flatMap((n) => hosts.map((h) => `${n}-${h}`));
    expect(shape(await plan("eu"))).toEqual(
      regionShape(
        "eu",
        [
          ...each(["apex-a", "apex-aaaa"]),
          "app-api-example-net",
          "caa-issue",
          "caa-issuewild",
          ...each(["rpc-a", "rpc-aaaa", "wildcard-a", "wildcard-aaaa"]),
        ],
        { hosts, etcd: true },
      ),
    );
  });

  it("asia: no IPv6, so no AAAA records; two custom domains in their own zones", async () => {
    expect(shape(await plan("asia"))).toEqual(
      regionShape("asia", [
        "apex-a-gw1",
        "app-app-example-org",
        "app-pay-example-jp",
        "caa-issue",
        "caa-issuewild",
        "rpc-a-gw1",
        "wildcard-a-gw1",
      ]),
    );
  });

  it("lab: its records go to the lab's BIND, written from the same GatewayDns inputs", async () => {
    // rpc_domain lies outside the base domain (dstack's seed layout): CAA of its own.
    expect(shape(await plan("lab"))).toEqual(
      regionShape("lab", [
        "apex-a-gw1",
        "app-shop-customer-lab-test",
        "app-wildcard-stores-customer-lab-test",
        "caa-issue",
        "caa-issuewild",
        "caa-rpc-issue",
        "caa-rpc-issuewild",
        "rpc-a-gw1",
        "wildcard-a-gw1",
      ]),
    );
  });

  it("gateway:dns none skips GatewayDns entirely", async () => {
    const lab = stackConfig("lab");
    const none = { ...lab, config: { ...lab.config, "gateway:dns": "none" } };
    expect(shape(await capturePlan("lab", { config: none }))).toEqual(regionShape("lab", []));
  });

  it("the committed plans/*.json are current (npm run plan writes them)", async () => {
    for (const stack of allStacks()) {
      const committed = JSON.parse(readFileSync(`${ROOT}plans/${stack}.json`, "utf8")) as Plan;
      expect(diffPlans(committed, await plan(stack))).toEqual({
        added: [],
        removed: [],
        changed: [],
      });
      expect(committed).toEqual(JSON.parse(planJson(await plan(stack))));
    }
  });

  it("is deterministic: a second capture in the same process is identical", async () => {
    expect(planJson(await capturePlan("us"))).toBe(planJson(await plan("us")));
  });
});

describe("offline plans: inputs", () => {
  it("us DNS: apex, wildcard and RPC names to the host, CAA pinned to the account, custom-domain TXT", async () => {
    const p = await plan("us");
    const common = { comment: "managed by Pulumi (cvm-tls-gateway)", ttl: 1 };
    const zoneId = "5f1b2c3d4e5f60718293a4b5c6d7e8f9";
    expect(byName(p, "us-dns-wildcard-a-gw1").inputs).toEqual({
      ...common,
      zoneId,
      name: "*.us.gw.example.com",
      type: "A",
      content: "192.0.2.10",
      proxied: false,
    });
    expect(byName(p, "us-dns-apex-aaaa-gw1").inputs).toEqual({
      ...common,
      zoneId,
      name: "us.gw.example.com",
      type: "AAAA",
      content: "2001:db8:10::10",
      proxied: false,
    });
    expect(byName(p, "us-dns-rpc-a-gw1").inputs.name).toBe("rpc.us.gw.example.com");
    const account = "https://acme-v02.api.letsencrypt.org/acme/acct/2859066495";
    for (const tag of ["issue", "issuewild"]) {
      expect(byName(p, `us-dns-caa-${tag}`).inputs).toEqual({
        ...common,
        zoneId,
        name: "us.gw.example.com",
        type: "CAA",
        data: {
          flags: 0,
          tag,
          value: `letsencrypt.org; accounturi=${account}; validationmethods=dns-01`,
        },
      });
      expect(byName(p, `us-dns-caa-${tag}`).dependsOn).toEqual([
        "pulumi-nodejs:dynamic/gateway:AcmeAccount::us-acme",
      ]);
    }
    expect(byName(p, "us-dns-app-shop-example-org").inputs).toEqual({
      ...common,
      zoneId: zoneIdOf("example.org"),
      name: "_dstack-app-address.shop.example.org",
      type: "TXT",
      content: '"6dba820630a1689028f66196eb0309011158e3df:443"',
    });
    const asia = await plan("asia");
    expect(byName(asia, "asia-dns-app-pay-example-jp").inputs.zoneId).toBe(
      "9a8b7c6d5e4f30211203f4e5d6c7b8a9",
    );
  });

  it("us ACME account and WireGuard key: provider inputs, secret outputs listed", async () => {
    const p = await plan("us");
    expect(byName(p, "us-acme").inputs).toEqual({
      __provider: "[serialized dynamic provider]",
      directoryUrl: "https://acme-v02.api.letsencrypt.org/directory",
      email: "ops@example.com",
      caPem: "",
      accountKey: "",
    });
    expect(byName(p, "us-acme").additionalSecretOutputs).toEqual(["accountKey"]);
    expect(byName(p, "us-gw1-wg").inputs).toEqual({
      __provider: "[serialized dynamic provider]",
      rotation: "",
    });
    expect(byName(p, "us-gw1-wg").additionalSecretOutputs).toEqual(["privateKey"]);
  });

  it("us host: the scripts are exactly what host/files.ts produces; triggers are content hashes", async () => {
    const p = await plan("us");
    const files = hostFiles({ layout: hostLayout(loadStackFile(`${ROOT}stacks/Pulumi.us.yaml`)) });
    const base = { addPreviousOutputInEnv: false, connection: "[secret]" };
    expect(byName(p, "us-gw1-setup").inputs).toEqual({ ...base, create: files.setup });
    expect(byName(p, "us-gw1-unit").inputs).toEqual({
      ...base,
      create: files.unitScript,
      delete: UNIT_DELETE,
    });
    expect(byName(p, "us-gw1-bundle").inputs).toEqual({
      connection: "[secret]",
      remotePath: "/opt/gateway/gateway.mjs",
      source: { asset: "dist/gateway.mjs" },
      triggers: [BUNDLE_HASH],
    });
    const config = byName(p, "us-gw1-config");
    expect(config.inputs).toEqual({
      ...base,
      create: files.configScript,
      stdin: "[secret]",
      logging: "none",
      triggers: [expect.stringMatching(/^[0-9a-f]{64}$/)],
    });
    expect(config.additionalSecretOutputs).toEqual(["connection", "stderr", "stdin", "stdout"]);
    const restart = byName(p, "us-gw1-restart");
    expect(restart.inputs).toEqual({
      ...base,
      create: files.restart,
      // Then the ids of the bundle and config steps: a rollback after a failed restart, whose
      // values equal what the state holds for this step, still restarts.
      triggers: [
        (config.inputs.triggers as string[])[0],
        BUNDLE_HASH,
        files.unitDigest,
        expect.stringMatching(/^us-gw1-bundle[0-9a-f]{8}$/),
        expect.stringMatching(/^us-gw1-config[0-9a-f]{8}$/),
      ],
    });
    expect(restart.dependsOn).toEqual([
      "command:remote:Command::us-gw1-config",
      "command:remote:Command::us-gw1-unit",
      "command:remote:CopyToRemote::us-gw1-bundle",
      "pulumi-nodejs:dynamic/gateway:AcmeAccount::us-acme",
      "pulumi-nodejs:dynamic/gateway:AdminToken::us-admin-token",
      "pulumi-nodejs:dynamic/gateway:WireGuardKey::us-gw1-wg",
    ]);
  });

  it("the config trigger is the digest of the exact config the host receives", async () => {
    const revealed = await capturePlan("us", { revealSecrets: true });
    const config = byName(revealed, "us-gw1-config");
    const toml = config.inputs.stdin as string;
    expect(config.inputs.triggers).toEqual([configDigest(toml, config.inputs.create as string)]);
    expect(toml).toContain('endpoint = "192.0.2.10:51820"');
    expect(toml).toContain(
      'account_url = "https://acme-v02.api.letsencrypt.org/acme/acct/2859066495"',
    );
    expect(toml).toContain(
      'cf_api_token = "stand-in-secret(gateway:config.core.certbot.cf_api_token)"',
    );
  });
});
