import * as pulumi from "@pulumi/pulumi";
import {
  cidrContains,
  formatIpv4,
  type OperatorConfig,
  parseCidr,
} from "../gateway-runtime/config/index.js";
import {
  type EtcdMemberRef,
  type EtcdMemberSpec,
  type EtcdTlsPems,
  type EtcdTlsShape,
  etcdEndpoints,
  ETCD_SERVER_NAME,
} from "../host/etcd.js";
import { shippedHostConfig } from "../host/config.js";
import type { ShippedCas } from "../host/files.js";
import { EtcdCa, EtcdCertificate } from "./etcd-pki.js";

/**
 * How a region's hosts share registrations (`core.cluster`), decided from the stack before any
 * resource exists:
 * - `none`: one host, `core.cluster.enabled` false: its own state file, as before.
 * - `members`: enabled without `core.cluster.etcd.endpoints`: the program runs an etcd member
 *   on every host, with TLS from a CA of the region's own (`regionEtcdTls`).
 * - `external`: enabled with endpoints: that etcd, trusted and authenticated with the PEMs of
 *   `gateway:etcdCaPem`, `gateway:etcdClientCertPem` and `gateway:etcdClientKeyPem` (each optional:
 *   the runtime speaks plain or server-only TLS too); no member runs on the hosts.
 */
export type RegionCluster =
  | { readonly kind: "none" }
  | {
      readonly kind: "members";
      readonly members: readonly EtcdMemberRef[];
      readonly endpoints: readonly string[];
    }
  | {
      readonly kind: "external";
      readonly endpoints: readonly string[];
      readonly ca: boolean;
      readonly client: boolean;
    };

/** Which external etcd settings the stack gives (their values are read later, as Inputs). */
export interface ExternalEtcdGiven {
  readonly ca: boolean;
  readonly clientCert: boolean;
  readonly clientKey: boolean;
}

/** Member counts the program runs: odd, so each tolerates as many lost hosts as it can. */
export const MEMBER_COUNTS = [1, 3, 5] as const;

const fail = (stack: string, message: string): never => {
  throw new pulumi.RunError(`stack ${stack}: ${message}`);
};

export function regionCluster(
  config: OperatorConfig,
  hosts: readonly EtcdMemberRef[],
  external: ExternalEtcdGiven,
  stack: string,
): RegionCluster {
  const { cluster } = config.core;
  const given = Object.entries({
    etcdCaPem: external.ca,
    etcdClientCertPem: external.clientCert,
    etcdClientKeyPem: external.clientKey,
  })
    .filter(([, set]) => set)
    .map(([key]) => `gateway:${key}`);
  if (!cluster.enabled) {
    if (hosts.length > 1) {
      fail(
        stack,
        `${hosts.length} hosts in gateway:hosts, but core.cluster.enabled is not true: each host would keep registrations and WireGuard peers of its own, so a CVM registered on one would be unreachable through the others; set core.cluster.enabled: true in gateway:config (the program then runs etcd on the hosts), or list one host`,
      );
    }
    if (given.length > 0) {
      fail(stack, `${given.join(", ")} set, but core.cluster.enabled is not true: remove them`);
    }
    return { kind: "none" };
  }
  if (cluster.etcd.endpoints.length > 0) {
    if (external.clientCert !== external.clientKey) {
      fail(stack, "gateway:etcdClientCertPem and gateway:etcdClientKeyPem go together");
    }
    return {
      kind: "external",
      endpoints: cluster.etcd.endpoints,
      ca: external.ca,
      client: external.clientCert,
    };
  }
  if (given.length > 0) {
    fail(
      stack,
      `${given.join(", ")} set, but core.cluster.etcd.endpoints is empty, so the program runs etcd on the region's hosts with a CA of its own: remove them, or give the endpoints of the external etcd they belong to`,
    );
  }
  const n = hosts.length;
  if (!(MEMBER_COUNTS as readonly number[]).includes(n)) {
    const why =
      n % 2 === 0
        ? `${n} members survive no more lost hosts than ${n - 1} (a majority of ${n} is ${n / 2 + 1}), with one more host that must be up`
        : `more than 5 members only slow every write, which each needs a majority to acknowledge`;
    fail(
      stack,
      `${n} hosts in gateway:hosts, and the program runs an etcd member on each: etcd writes only while a majority of its members (its quorum) is up, so 3 members survive one lost host and 5 two, while ${why}; list 1, 3 or 5 hosts, or give core.cluster.etcd.endpoints of an external etcd`,
    );
  }
  return { kind: "members", members: hosts, endpoints: etcdEndpoints(hosts) };
}

/**
 * Each host's WireGuard address: host i (in `gateway:hosts` order) gets `core.wg.ip` + i, with
 * its prefix, so the first host keeps the address as written. Each must lie in
 * `core.wg.reserved_net`: the allocator hands every other address of `client_ip_range` to
 * CVMs, and a CVM given a host's address would take that host's traffic.
 */
function hostWgIps(config: OperatorConfig, hosts: readonly { name: string }[], stack: string) {
  const { wg } = config.core;
  const base = parseCidr(wg.ip);
  if (base === undefined) throw new Error(`core.wg.ip ${wg.ip} was validated as a CIDR`);
  const reserved = wg.reserved_net.map(parseCidr);
  return hosts.map((host, i) => {
    if (i === 0) return wg.ip;
    const address = base.address + i;
    const text = `${formatIpv4(address)}/${base.prefix}`;
    if (!reserved.some((r) => r !== undefined && cidrContains(r, address))) {
      fail(
        stack,
        `host ${host.name} (number ${i + 1} in gateway:hosts) gets the WireGuard address ${formatIpv4(address)} (core.wg.ip ${wg.ip} + ${i}), which is outside core.wg.reserved_net [${wg.reserved_net.join(", ")}]: CVMs get every address outside it, so widen core.wg.reserved_net or move core.wg.ip`,
      );
    }
    return text;
  });
}

/**
 * Each host's config before anything is generated: its WireGuard address (`hostWgIps`), the
 * endpoints of the members the program runs, and the files shipped to it, checked by
 * `shippedHostConfig` against what the host gets, so a missing file fails the preview.
 */
export function shippedRegionConfigs(
  config: OperatorConfig,
  hosts: readonly { name: string }[],
  cluster: RegionCluster,
  cas: Pick<ShippedCas, "acmeCa" | "attestationCa">,
  stack: string,
): OperatorConfig[] {
  const { core } = config;
  const shipped: ShippedCas = {
    ...cas,
    etcdCa: cluster.kind === "members" || (cluster.kind === "external" && cluster.ca),
    etcdClient: cluster.kind === "members" || (cluster.kind === "external" && cluster.client),
  };
  const etcd =
    cluster.kind === "members"
      ? { ...core.cluster.etcd, endpoints: [...cluster.endpoints], server_name: ETCD_SERVER_NAME }
      : core.cluster.etcd;
  return hostWgIps(config, hosts, stack).map((ip, i) => {
    const own: OperatorConfig = {
      ...config,
      core: {
        ...core,
        wg: ip === core.wg.ip ? core.wg : { ...core.wg, ip },
        cluster: etcd === core.cluster.etcd ? core.cluster : { ...core.cluster, etcd },
      },
    };
    return shippedHostConfig(own, shipped, { stack, host: hosts[i]?.name ?? "" });
  });
}

/** The etcd part of one host's deployment: its member, and the TLS files it gets. */
export interface HostEtcd {
  readonly member?: EtcdMemberSpec | undefined;
  readonly shape: EtcdTlsShape;
  /** A secret: it holds private keys. */
  readonly pems: pulumi.Output<EtcdTlsPems>;
}

export interface ExternalEtcdPems {
  readonly caPem?: pulumi.Input<string> | undefined;
  readonly clientCertPem?: pulumi.Input<string> | undefined;
  readonly clientKeyPem?: pulumi.Input<string> | undefined;
}

/**
 * The etcd TLS of every host, by host name. Members: the region's CA (`EtcdCa`), a certificate
 * per member for its peers and clients (its address, IPv6 address and name), and one client
 * certificate the gateways on every host share. External: the stack's PEMs. Every private key
 * stays a Pulumi secret, and reaches a host only on a step's stdin.
 */
export function regionEtcdTls(
  name: string,
  cluster: RegionCluster,
  hosts: readonly (EtcdMemberRef & { ipv6?: string | undefined })[],
  external: ExternalEtcdPems,
  parent: pulumi.Resource,
): Map<string, HostEtcd> {
  const byHost = new Map<string, HostEtcd>();
  if (cluster.kind === "none") return byHost;
  if (cluster.kind === "external") {
    const shape = { member: false, ca: cluster.ca, client: cluster.client };
    const pems = pulumi.secret(
      pulumi
        .all([external.caPem, external.clientCertPem, external.clientKeyPem])
        .apply(([ca, clientCert, clientKey]) => ({ ca, clientCert, clientKey })),
    );
    for (const host of hosts) byHost.set(host.name, { shape, pems });
    return byHost;
  }
  const child = { parent };
  const ca = new EtcdCa(`${name}-etcd-ca`, { commonName: `${name} etcd CA` }, child);
  const client = new EtcdCertificate(
    `${name}-etcd-client`,
    { ca, commonName: `${name} gateway`, usage: "client" },
    child,
  );
  const shape = { member: true, ca: true, client: true };
  for (const host of hosts) {
    const cert = new EtcdCertificate(
      `${name}-${host.name}-etcd-member`,
      {
        ca,
        commonName: host.name,
        dnsNames: [host.name, ETCD_SERVER_NAME],
        ips: [host.address, ...(host.ipv6 === undefined ? [] : [host.ipv6])],
        usage: "member",
      },
      child,
    );
    const pems = pulumi.secret(
      pulumi
        .all([ca.certPem, cert.certPem, cert.keyPem, client.certPem, client.keyPem])
        .apply(([caPem, memberCert, memberKey, clientCert, clientKey]) => ({
          ca: caPem,
          memberCert,
          memberKey,
          clientCert,
          clientKey,
        })),
    );
    const member = { self: host, members: cluster.members, token: `cvm-gateway-${name}` };
    byHost.set(host.name, { member, shape, pems });
  }
  return byHost;
}
