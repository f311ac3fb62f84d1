import { createHash } from "node:crypto";
import { posix } from "node:path";
import type { OperatorConfig } from "../gateway-runtime/config/index.js";

/** Where things live on a gateway host. The lab runs the same scripts, so these are fixed. */
export const HOST_PATHS = {
  /** The bundled runtime (`dist/gateway.mjs`), root-owned, world-readable: it holds no secret. */
  bundle: "/opt/gateway/gateway.mjs",
  installDir: "/opt/gateway",
  /** nftables rules loaded by `gateway-firewall.service`; root-owned so the service user cannot widen them. */
  firewall: "/opt/gateway/firewall.nft",
  configDir: "/etc/gateway",
  /** The host's gateway config, mode 0600, owned by the service user. */
  config: "/etc/gateway/gateway.toml",
  /** Extra CA certificates the runtime trusts for the ACME directory (`core.certbot.acme_ca_file`). */
  acmeCa: "/etc/gateway/acme-ca.pem",
  /** CA bundle CVM client certificates must chain to (`core.attestation.ca_file`, mode "ca"). */
  attestationCa: "/etc/gateway/client-ca.pem",
  /** The region's etcd CA, the gateway's client certificate and key (`core.cluster.etcd.*_file`). */
  etcdCa: "/etc/gateway/etcd-ca.pem",
  etcdClientCert: "/etc/gateway/etcd-client.pem",
  etcdClientKey: "/etc/gateway/etcd-client-key.pem",
  unit: "/etc/systemd/system/gateway.service",
  /** Written by the gateway (`run --ready-file`) once a new generation serves; the restart step waits for it. */
  ready: "/run/gateway/ready",
  firewallUnit: "/etc/systemd/system/gateway-firewall.service",
  /** Kernel settings of the host (`HOST_SYSCTLS`), applied at setup and by systemd-sysctl at boot. */
  sysctl: "/etc/sysctl.d/60-gateway.conf",
  /**
   * Prometheus alerting rules (host/alerts.ts), 0644: not in /etc/gateway, which is 0700 for
   * the service user (it holds the config's secrets), where a local Prometheus could not read it.
   */
  alertRules: "/opt/gateway/prometheus-rules.yml",
} as const;

/**
 * Kernel settings a gateway host needs. `tcp_tw_reuse = 1`: a new connection to a CVM may take a
 * local port whose last connection to the same CVM address and port is still in TIME_WAIT (older
 * than a second; TCP timestamps tell the two apart). The gateway sends the first FIN whenever
 * the client ends a connection before the CVM does, and each such close holds its local port
 * for a minute: without reuse, connections closed that way to one CVM port are limited to the
 * local port range per minute (BENCHMARKS.md, "Several instances").
 * Linux's default, 2, allows reuse on loopback only; WireGuard addresses are not loopback.
 */
export const HOST_SYSCTLS: readonly { key: string; value: string; why: string }[] = [
  {
    key: "net.ipv4.tcp_tw_reuse",
    value: "1",
    why: "connects to CVMs may reuse a local port held in TIME_WAIT by an earlier connection",
  },
];

/**
 * Node flags the gateway runs with (the unit's ExecStart; `npm run bench` measures ours with the
 * same). `--single-threaded-gc`: V8's parallel GC helpers only add futex wake-ups for a
 * one-thread proxy, costing CPU and tail latency (BENCHMARKS.md has the A/B).
 */
export const NODE_FLAGS: readonly string[] = ["--single-threaded-gc"];

/**
 * The Node.js major the gateway runs on (the bundle's esbuild target, `engines` in
 * package.json, the exact version in `.node-version`): a host whose node is older gets this
 * major from NodeSource. 26: the Active LTS line, supported to April 2029 (24 ends in April
 * 2028), with OpenSSL 3.5 and so X25519MLKEM768; README "Which Node" says why.
 */
export const NODE_MAJOR = 26;

export const SERVICE_USER = "gateway";
export const SERVICE_NAME = "gateway.service";

/** What the host scripts and the systemd unit need to know about one gateway's config. */
export interface HostLayout {
  /** TLS proxy (`core.proxy.listen_port`), open to everyone. */
  readonly tlsPort: number;
  /** Address the proxy listens on; the readiness probe connects there (0.0.0.0 → 127.0.0.1). */
  readonly tlsAddress: string;
  /** The http-to-https redirect, when `core.proxy.http_redirect`; open to everyone. */
  readonly httpPort?: number;
  /** Registration RPC (`port`), open to everyone: CVMs authenticate with RA-TLS. */
  readonly rpcPort: number;
  /** Address of the RPC listener (`address`); its socket unit binds it. @default "0.0.0.0" */
  readonly rpcAddress?: string;
  /** WireGuard (`core.wg.listen_port`, UDP), open to everyone. */
  readonly wireguardPort: number;
  /** Admin API (`core.admin.port`) when enabled: never opened, reachable from the host only. */
  readonly adminPort?: number;
  /** SSH, kept open so the deployer can come back. */
  readonly sshPort: number;
  /** Directories the service writes (state, certificates, WireGuard config): 0700, the unit's ReadWritePaths. */
  readonly writablePaths: readonly string[];
  /**
   * Set when the host runs a member of the region's etcd: the other hosts' addresses, the only
   * ones its etcd ports (ETCD_PORTS) are open to. Absent: no etcd on this host.
   */
  readonly etcdPeers?: readonly string[];
  /** `core.proxy.engine = "haproxy"`: the host needs Debian's haproxy, which the gateway runs. */
  readonly haproxy?: boolean;
}

/** A path that is safe to put in a shell script and a unit file unquoted. */
const SAFE_PATH = /^\/[A-Za-z0-9._/-]+$/;
/** Directories the service must never own or write as a whole. */
const SYSTEM_DIRS = new Set(
  "/ /bin /boot /dev /etc /home /lib /lib64 /opt /proc /root /run /sbin /srv /sys /tmp /usr /var /var/lib /var/log /usr/local".split(
    " ",
  ),
);
const SYSTEM_TREES = ["/boot/", "/dev/", "/etc/", "/proc/", "/sys/", "/usr/"];

function checkedDir(path: string, key: string): string {
  const normal = posix.normalize(path).replace(/(.)\/+$/, "$1");
  if (
    !SAFE_PATH.test(path) ||
    SYSTEM_DIRS.has(normal) ||
    SYSTEM_TREES.some((tree) => normal.startsWith(tree))
  ) {
    throw new Error(
      `${key}: the service would own and write "${normal}": use a directory of its own such as /var/lib/gateway (letters, digits, . _ - /)`,
    );
  }
  return normal;
}

/** Drops paths inside another listed path: `/var/lib/gateway/certs` is covered by `/var/lib/gateway`. */
export function outermostPaths(paths: readonly string[]): string[] {
  const unique = [...new Set(paths)].sort();
  return unique.filter((p) => !unique.some((q) => q !== p && p.startsWith(`${q}/`)));
}

/** The host's ports and writable directories, read from its validated gateway config. */
export function hostLayout(config: OperatorConfig, sshPort = 22): HostLayout {
  const { core } = config;
  const writable = [
    checkedDir(posix.dirname(core.state_path), "core.state_path"),
    checkedDir(posix.dirname(core.wg.config_path), "core.wg.config_path"),
  ];
  if (core.certbot.enabled) writable.push(checkedDir(core.certbot.workdir, "core.certbot.workdir"));
  return {
    tlsPort: core.proxy.listen_port,
    tlsAddress: core.proxy.listen_addr,
    ...(core.proxy.http_redirect ? { httpPort: core.proxy.http_port } : {}),
    rpcPort: config.port,
    rpcAddress: config.address,
    wireguardPort: core.wg.listen_port,
    ...(core.admin.enabled ? { adminPort: core.admin.port } : {}),
    sshPort,
    writablePaths: outermostPaths(writable),
    ...(core.proxy.engine === "haproxy" ? { haproxy: true } : {}),
  };
}

/** Every directory the setup script creates 0700 for the service user (the config dir included). */
export function serviceDirectories(layout: HostLayout): string[] {
  return [HOST_PATHS.configDir, ...layout.writablePaths];
}

/** The address the readiness probe dials: a wildcard listen address is probed on loopback. */
export function probeAddress(layout: HostLayout): string {
  if (layout.tlsAddress === "0.0.0.0") return "127.0.0.1";
  if (layout.tlsAddress === "::") return "::1";
  return layout.tlsAddress;
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Quotes a string for POSIX sh. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'"'"'`)}'`;
}

/**
 * A here-document that writes `content` verbatim (quoted delimiter: no expansion). Refuses
 * content containing the delimiter line, which would end the document early.
 */
export function heredoc(content: string, delimiter: string): string {
  if (content.split("\n").includes(delimiter)) {
    throw new Error(`content contains the here-document delimiter ${delimiter}`);
  }
  const body = content.endsWith("\n") ? content : `${content}\n`;
  return `<<'${delimiter}'\n${body}${delimiter}`;
}

/** The first line of every file the program writes on a host. */
export const HEADER = "# Managed by Pulumi (cvm-tls-gateway): local changes are overwritten.";

/** The sandbox lines both units the program writes share (the gateway's and the etcd member's). */
export const KERNEL_PROTECTIONS = `ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes`;
