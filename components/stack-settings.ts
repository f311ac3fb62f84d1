import { isIP } from "node:net";
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { isDnsName } from "../gateway-runtime/config/index.js";
import { NODE_MAJOR } from "../host/layout.js";
import { ROOT_USER, USER_NAME } from "../host/sudo.js";

/**
 * Program-level stack keys (beside `gateway:config`): where the region's hosts are, how to reach
 * them, and which DNS to write. Validated here so a bad stack fails before anything is planned.
 */
const hostName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,30}$/, { error: "expected a short lowercase name like gw1" });
const ipv4 = z.string().refine((s) => isIP(s) === 4, { error: "expected an IPv4 address" });
const ipv6 = z.string().refine((s) => isIP(s) === 6, { error: "expected an IPv6 address" });
const port = z.number().int().min(1).max(65535);
const dnsName = z.string().refine((s) => isDnsName(s, 2), { error: "expected a DNS name" });
/** A custom domain, or `*.<parent>` for every name one label below the parent. */
const customDomainName = z
  .string()
  .refine((s) => isDnsName(s.startsWith("*.") ? s.slice(2) : s, 2), {
    error: "expected a DNS name, or *.<DNS name>",
  });

const hostSchema = z.strictObject({
  name: hostName,
  address: ipv4,
  ipv6: ipv6.optional(),
  sshPort: port.default(22),
  sshHostKey: z.string().min(1).optional(),
  /** Change to rotate this host's WireGuard key pair. */
  wgKeyRotation: z.string().default(""),
});

const customDomainSchema = z
  .strictObject({
    domain: customDomainName,
    appId: z.string().regex(/^[0-9a-f]{1,64}$/, { error: "expected an app id (lowercase hex)" }),
    port,
    zone: dnsName.optional(),
    zoneId: z.string().min(1).optional(),
  })
  .refine((d) => (d.zone === undefined) !== (d.zoneId === undefined), {
    error: "give exactly one of zone and zoneId",
  });

const settingsSchema = z.strictObject({
  hosts: z
    .array(hostSchema)
    .min(1, { error: "list at least one host" })
    .refine((hosts) => new Set(hosts.map((h) => h.name)).size === hosts.length, {
      error: "host names must be unique",
    })
    .refine((hosts) => new Set(hosts.map((h) => h.address)).size === hosts.length, {
      error: "host addresses must be unique",
    }),
  sshUser: z
    .string()
    .regex(USER_NAME, { error: "expected a user name: root, or one with passwordless sudo" })
    .default(ROOT_USER),
  dns: z.enum(["cloudflare", "none"]).default("cloudflare"),
  dnsZone: dnsName.optional(),
  customDomains: z.array(customDomainSchema).default([]),
  acmeCaPem: z.string().min(1).optional(),
  attestationCaPem: z.string().min(1).optional(),
  /** An external etcd's CA and the gateways' client certificate (`core.cluster.etcd.endpoints` set). */
  etcdCaPem: z.string().min(1).optional(),
  etcdClientCertPem: z.string().min(1).optional(),
  caaIssuer: z.string().min(1).optional(),
  nodeMajor: z.number().int().min(NODE_MAJOR).default(NODE_MAJOR),
  /** Change to rotate the region's admin token (the program's, when the stack names none). */
  adminTokenRotation: z.string().default(""),
  /**
   * The gateway bundle to ship instead of this package's `dist/gateway.mjs`: a build kept for a
   * rollback, or a test build (the lab's rollout tests ship changed and broken ones).
   */
  bundle: z.string().min(1).optional(),
  /** An app the rollout's health gate routes to on each updated host (several hosts). */
  canaryAppId: z
    .string()
    .regex(/^[0-9a-f]{1,64}$/, { error: "expected an app id (lowercase hex)" })
    .optional(),
});

export type HostSettings = z.output<typeof hostSchema>;
export type CustomDomainSettings = z.output<typeof customDomainSchema>;
export type StackSettings = z.output<typeof settingsSchema> & {
  /** `gateway:sshPrivateKey`, a secret; absent: the SSH agent is used. */
  readonly sshPrivateKey?: pulumi.Output<string> | undefined;
  /** `gateway:etcdClientKeyPem`, a secret: the key of `etcdClientCertPem`. */
  readonly etcdClientKeyPem?: pulumi.Output<string> | undefined;
};

const OBJECT_KEYS = ["hosts", "customDomains"] as const;
const STRING_KEYS = [
  "sshUser",
  "dns",
  "dnsZone",
  "acmeCaPem",
  "attestationCaPem",
  "etcdCaPem",
  "etcdClientCertPem",
  "caaIssuer",
  "adminTokenRotation",
  "canaryAppId",
  "bundle",
] as const;

/** The program-level keys, as `gateway:<key>` in the stack file. */
export const SETTING_KEYS = [
  ...OBJECT_KEYS,
  ...STRING_KEYS,
  "nodeMajor",
  "sshPrivateKey",
  "etcdClientKeyPem",
] as const;

/** Validates the plain (non-secret) program keys; throws a RunError listing every problem. */
export function parseStackSettings(raw: Record<string, unknown>, source: string) {
  const result = settingsSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (issue) => `  - gateway:${issue.path.join(".")}: ${issue.message}`,
  );
  throw new pulumi.RunError(
    `invalid program settings (${source}), ${problems.length} problem(s):\n${problems.join("\n")}`,
  );
}

/** Reads the running stack's program-level keys. */
export function readStackSettings(): StackSettings {
  const config = new pulumi.Config("gateway");
  const raw: Record<string, unknown> = {};
  for (const key of OBJECT_KEYS) raw[key] = config.getObject<unknown>(key);
  for (const key of STRING_KEYS) raw[key] = config.get(key);
  raw.nodeMajor = config.getNumber("nodeMajor");
  for (const key of Object.keys(raw)) if (raw[key] === undefined) delete raw[key];
  const settings = parseStackSettings(raw, `stack ${pulumi.getStack()}`);
  const sshPrivateKey = config.getSecret("sshPrivateKey");
  const etcdClientKeyPem = config.getSecret("etcdClientKeyPem");
  return {
    ...settings,
    ...(sshPrivateKey === undefined ? {} : { sshPrivateKey }),
    ...(etcdClientKeyPem === undefined ? {} : { etcdClientKeyPem }),
  };
}
