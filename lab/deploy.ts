import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as pulumi from "@pulumi/pulumi";
import { acmeAccountProvider, type AcmeAccountInputs } from "../components/acme-account.js";
import { capturePlan, hostSteps, type Plan, stackConfig } from "../scripts/plan.js";
import type { LabAcme } from "./acme.js";
import { type LabDns, setRecord } from "./dns.js";
import { sh, step } from "./exec.js";
import { type LabHost, ssh, sshOptions } from "./host.js";
import { pem } from "./pki.js";
import { labPath, readJson, writeJson } from "./state.js";

export const LAB_STACK = "lab";
export const LAB_HOST = "lab-gw1";
const BUNDLE = new URL("../dist/gateway.mjs", import.meta.url).pathname;

interface Applied {
  /** Content digest of each host step last applied: unchanged steps are skipped, as `pulumi up` does. */
  steps: Record<string, string>;
  account?: { directoryUrl: string; accountUrl: string; accountKey: string };
}

const appliedFile = () => labPath("deployed.json");

/**
 * The lab stack's config as `pulumi up -s lab` would see it: the stack file, with the values a
 * real deployment decrypts (the TSIG secret) and the CA PEMs the lab generates filled in.
 */
function labStackConfig(dns: LabDns, acme: LabAcme, clientCaPem: string) {
  const base = stackConfig(LAB_STACK);
  const gateway = JSON.parse(base.config["gateway:config"] ?? "{}");
  gateway.core.certbot.rfc2136.tsig_secret = dns.secret;
  base.config["gateway:config"] = JSON.stringify(gateway);
  base.config["gateway:acmeCaPem"] = pem(acme.listenerCaFile);
  base.config["gateway:attestationCaPem"] = clientCaPem;
  return base;
}

/** The ACME account is created for real against pebble (once; kept in .lab), as the program's provider does. */
function realAccount(applied: Applied) {
  return async (args: pulumi.runtime.MockResourceArgs) => {
    if (args.type !== "pulumi-nodejs:dynamic/gateway:AcmeAccount") return undefined;
    const inputs = args.inputs as AcmeAccountInputs;
    if (applied.account?.directoryUrl !== inputs.directoryUrl) {
      step(`ACME: registering the lab's account at ${inputs.directoryUrl}`);
      const created = await acmeAccountProvider().create(inputs);
      applied.account = {
        directoryUrl: inputs.directoryUrl,
        accountUrl: created.outs.accountUrl,
        accountKey: created.outs.accountKey,
      };
      writeJson(appliedFile(), applied);
    }
    const account = applied.account as NonNullable<Applied["account"]>;
    return {
      id: account.accountUrl,
      state: { ...inputs, accountUrl: account.accountUrl, accountKey: account.accountKey },
    };
  };
}

/** Evaluates the Pulumi program for the lab stack (secrets kept, in memory only). */
export async function labPlan(dns: LabDns, acme: LabAcme, clientCaPem: string): Promise<Plan> {
  const applied = readJson<Applied>(appliedFile()) ?? { steps: {} };
  const sha256 = createHash("sha256").update(readFileSync(BUNDLE)).digest("hex");
  return capturePlan(LAB_STACK, {
    revealSecrets: true,
    config: labStackConfig(dns, acme, clientCaPem),
    bundle: { path: BUNDLE, sha256 },
    override: realAccount(applied),
  });
}

/** Runs the host steps GatewayHost produced, over SSH, in dependency order. */
export async function applyHost(plan: Plan, host: LabHost): Promise<void> {
  const applied = readJson<Applied>(appliedFile()) ?? { steps: {} };
  for (const s of hostSteps(plan, LAB_HOST)) {
    const digest = createHash("sha256")
      .update(s.kind === "copy" ? readFileSync(s.source) : `${s.script}\0${s.stdin ?? ""}`)
      .digest("hex");
    const running = s.name.endsWith("-restart")
      ? await ssh(host, "systemctl is-active --quiet gateway.service").then(
          () => true,
          () => false,
        )
      : true;
    if (applied.steps[s.name] === digest && running) {
      step(`deploy: ${s.name} unchanged`);
      continue;
    }
    step(`deploy: ${s.name} (${s.kind === "copy" ? `copy to ${s.remotePath}` : "remote command"})`);
    if (s.kind === "copy") {
      const dir = s.remotePath.slice(0, s.remotePath.lastIndexOf("/"));
      await sh("scp", [
        ...sshOptions(host.keyFile),
        "-q",
        s.source,
        `${host.user}@${host.address}:${s.remotePath}`,
      ]).catch(async () => {
        await ssh(host, `mkdir -p ${dir}`);
        await sh("scp", [
          ...sshOptions(host.keyFile),
          "-q",
          s.source,
          `${host.user}@${host.address}:${s.remotePath}`,
        ]);
      });
    } else {
      const out = await ssh(host, s.script, s.stdin ?? "");
      for (const line of out.trim().split("\n").filter(Boolean).slice(-3)) step(`  ${line}`);
    }
    applied.steps[s.name] = digest;
    writeJson(appliedFile(), { ...(readJson<Applied>(appliedFile()) ?? {}), steps: applied.steps });
  }
}

/** Writes the records GatewayDns produced to BIND with RFC 2136, grouped by name and type. */
export async function applyDns(plan: Plan, dns: LabDns): Promise<void> {
  const groups = new Map<
    string,
    { name: string; type: "A" | "AAAA" | "TXT" | "CAA"; values: string[] }
  >();
  for (const r of plan.resources.filter((x) => x.type === "cloudflare:index/dnsRecord:DnsRecord")) {
    const i = r.inputs as {
      name: string;
      type: "A" | "AAAA" | "TXT" | "CAA";
      content?: string;
      data?: { flags: number; tag: string; value: string };
    };
    const value =
      i.type === "CAA" && i.data
        ? `${i.data.flags} ${i.data.tag} "${i.data.value}"`
        : (i.content ?? "");
    const key = `${i.name} ${i.type}`;
    const group = groups.get(key) ?? { name: i.name, type: i.type, values: [] };
    group.values.push(value);
    groups.set(key, group);
  }
  for (const g of groups.values()) {
    step(`DNS: ${g.name} ${g.type} ${g.values.join(" | ")}`);
    await setRecord(dns, g.name, g.type, g.values);
  }
}
