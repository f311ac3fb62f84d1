/**
 * The lab's deploy: `pulumi preview` then `pulumi up` of the `lab` stack through the recording
 * engine (tools/engine), which runs the compiled program with @pulumi/pulumi's own language
 * entry and dynamic provider host. Host steps run over SSH by the command stand-in, records go
 * to BIND by the cloudflare stand-in; state is kept in .lab/checkpoint.json between runs, so a
 * second run with no change touches nothing and a changed key touches only what it reaches.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Mode, run, readStackConfig, type Step } from "../tools/engine/index.js";
import { readCheckpoint, writeCheckpoint } from "../tools/engine/state.js";
import { type DnsRecordValue, cloudflareProvider } from "../tools/engine/providers/cloudflare.js";
import { commandProvider } from "../tools/engine/providers/command.js";
import type { LabAcme } from "./acme.js";
import { LAB_APP_ID } from "./cvms.js";
import { type LabDns, updateRecord } from "./dns.js";
import { step } from "./exec.js";
import type { LabHost } from "./host.js";
import { pem } from "./pki.js";
import { FIRST_GATEWAY, labPath } from "./state.js";

export const LAB_STACK = "lab";
const ROOT = join(import.meta.dirname, "..");
const checkpointFile = () => labPath("checkpoint.json");

/** Zone ids of the lab's Cloudflare stand-in account: the zones BIND serves. */
export function labZones(dns: LabDns): Record<string, string> {
  return Object.fromEntries(
    dns.zones.map((z, i) => [z, `${(i + 1).toString(16).padStart(32, "0")}`]),
  );
}

/**
 * The lab stack's config as `pulumi up -s lab` would see it: the stack file, plus the secrets
 * and CAs the lab generates (TSIG secret, SSH deploy key, pebble's CA, the CVM client CA, the
 * host key to pin), all passed as the engine passes config.
 */
function labStackConfig(
  dns: LabDns,
  acme: LabAcme,
  hosts: readonly LabHost[],
  clientCaPem: string,
) {
  const base = readStackConfig(join(ROOT, "stacks"), LAB_STACK);
  const gateway = JSON.parse(base.config["gateway:config"] ?? "{}");
  gateway.core.certbot.rfc2136.tsig_secret = dns.secret;
  // A region of several hosts shares its state through etcd members the program runs on them,
  // as an operator would set it: pulumi config set --path gateway:config.core.cluster.enabled true
  if (hosts.length > 1) gateway.core.cluster = { ...gateway.core.cluster, enabled: true };
  // Its rollout gates each host on routing the lab's app (host/rollout.ts).
  const canary = hosts.length > 1 ? { "gateway:canaryAppId": LAB_APP_ID } : {};
  const first = hosts[0];
  if (!first) throw new Error("the lab deploys a region of at least one host");
  return {
    config: {
      ...base.config,
      ...canary,
      "gateway:config": JSON.stringify(gateway),
      "gateway:hosts": JSON.stringify(
        hosts.map((h) => ({ name: h.name, address: h.address, sshHostKey: hostKeyOf(h) })),
      ),
      // A private ACME CA: the CA of its API's TLS, and the root it issues under (pebble makes
      // a new one each start), which the rollout gates on a host verify the served chain with.
      "gateway:acmeCaPem": `${pem(acme.listenerCaFile).trimEnd()}\n${pem(acme.rootFile)}`,
      "gateway:attestationCaPem": clientCaPem,
      "gateway:sshPrivateKey": readFileSync(first.keyFile, "utf8"),
    },
    secretKeys: [...new Set([...base.secretKeys, "gateway:config", "gateway:sshPrivateKey"])],
  };
}

/** The host key `gateway:hosts` pins for `host` (`<type> <base64>`). */
function hostKeyOf(host: LabHost): string {
  const dir = host.name === FIRST_GATEWAY.name ? "host" : `host-${host.name}`;
  return readFileSync(labPath(dir, "host_key.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ");
}

function bindSink(dns: LabDns) {
  return {
    add: (r: DnsRecordValue) => updateRecord(dns, "add", r),
    remove: (r: DnsRecordValue) => updateRecord(dns, "delete", r),
  };
}

export interface LabDeployInputs {
  dns: LabDns;
  acme: LabAcme;
  /** The region's gateway hosts, in `gateway:hosts` order. */
  hosts: readonly LabHost[];
  clientCaPem: string;
  /** `<ns>:<key>[.path]=<value>` settings applied over the stack file for this run, as `pulumi config set --path` would. */
  sets?: readonly string[];
}

/** Applies `gateway:config.core.proxy.timeouts.idle=7m` to the engine's config map (values as YAML scalars: JSON, else a string). */
export function applySets(config: Record<string, string>, sets: readonly string[]): void {
  for (const set of sets) {
    const match = /^([a-zA-Z0-9-]+:[a-zA-Z0-9_-]+)((?:\.[a-zA-Z0-9_-]+)*)=(.*)$/s.exec(set);
    if (!match) throw new Error(`--set ${set}: expected <namespace>:<key>[.<path>]=<value>`);
    const [, key = "", path = "", raw = ""] = match;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    const parts = path.split(".").filter(Boolean);
    if (parts.length === 0) {
      config[key] = typeof value === "string" ? value : JSON.stringify(value);
      continue;
    }
    const root = JSON.parse(config[key] ?? "{}") as Record<string, unknown>;
    let node = root;
    for (const part of parts.slice(0, -1)) {
      if (typeof node[part] !== "object" || node[part] === null) node[part] = {};
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1] as string] = value;
    config[key] = JSON.stringify(root);
  }
}

function summary(steps: readonly Step[]): string {
  const count = (op: string) => steps.filter((s) => s.op === op).length;
  const parts = ["create", "update", "replace", "delete"]
    .map((op) => [op, count(op)] as const)
    .filter(([, n]) => n > 0)
    .map(([op, n]) => `${n} to ${op}`);
  return `${parts.length > 0 ? parts.join(", ") : "no changes"}, ${count("same")} unchanged`;
}

/** Runs the engine over the lab stack in `mode`; returns the steps it took. */
export async function labDeploy(inputs: LabDeployInputs, mode: Mode): Promise<Step[]> {
  const { config, secretKeys } = labStackConfig(
    inputs.dns,
    inputs.acme,
    inputs.hosts,
    inputs.clientCaPem,
  );
  applySets(config, inputs.sets ?? []);
  const log = (line: string) => step(`  ${line}`);
  const result = await run({
    projectDir: ROOT,
    stack: LAB_STACK,
    mode,
    config,
    secretKeys,
    checkpointFile: checkpointFile(),
    providers: {
      command: commandProvider({ pwd: ROOT, log }),
      cloudflare: cloudflareProvider({ zones: labZones(inputs.dns), sink: bindSink(inputs.dns) }),
    },
    log,
  });
  step(`deploy (${mode}): ${summary(result.deployment.steps)}`);
  return result.deployment.steps;
}

/**
 * A rebuilt gateway host (its sshd had to start again: a reboot, or another lab took the
 * namespaces) has lost what the host steps did, while the checkpoint still lists them. The lab
 * forgets them, as `pulumi refresh` would find them gone, so the next up runs them again. It
 * forgets those of every host: the steps are idempotent, and the lab does not have to know
 * which resource belongs to which host.
 */
export function forgetHostSteps(hosts: readonly string[]): void {
  const file = checkpointFile();
  if (!existsSync(file) || hosts.length === 0) return;
  const state = readCheckpoint(file, LAB_STACK);
  // Only the rebuilt hosts' steps (`lab-<host>-setup`, ...): the others' hosts still have what
  // their steps put there, and running those again would restart their etcd members too.
  const rebuilt = (urn: string) =>
    hosts.some((host) => (urn.split("::").at(-1) ?? "").startsWith(`${LAB_STACK}-${host}-`));
  const kept = state.resources.filter(
    (r) => !(r.type.startsWith("command:remote:") && rebuilt(r.urn)),
  );
  if (kept.length === state.resources.length) return;
  step(
    `deploy: gateway host ${hosts.join(", ")} rebuilt: its ${state.resources.length - kept.length} host steps will run again`,
  );
  writeCheckpoint(file, { ...state, resources: kept });
}

/** `pulumi preview` then `pulumi up`: the diff is shown before anything is applied. */
export async function labUp(inputs: LabDeployInputs): Promise<Step[]> {
  step("deploy: pulumi preview of the lab stack (recording engine)");
  await labDeploy(inputs, "preview");
  step("deploy: pulumi up of the lab stack");
  return labDeploy(inputs, "up");
}
