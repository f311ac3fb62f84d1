/**
 * The etcd side of a gateway host, as text: the member's flags and hardened unit (when the
 * program runs the region's etcd on its hosts), and the script installing the TLS files that
 * the member and the gateway read. Pure functions, like host/files.ts, so the tests start real
 * members with exactly these flags.
 */
import {
  HEADER,
  HOST_PATHS,
  type HostLayout,
  heredoc,
  KERNEL_PROTECTIONS,
  SERVICE_USER,
} from "./layout.js";

/** etcd's registered ports: clients (the gateways) and peers (the other members). */
export const ETCD_PORTS = { client: 2379, peer: 2380 } as const;

/**
 * The name every member's certificate carries beside its own, which the gateways check
 * (`core.cluster.etcd.server_name`): they reach the members by IP address, and a TLS client
 * cannot send an address as the server name. `.internal` is reserved for private use, so no
 * public CA issues it; only the region's own CA does.
 */
export const ETCD_SERVER_NAME = "etcd.gateway.internal";

/** The Debian package `etcd-server` creates this user; the member runs as it. */
export const ETCD_USER = "etcd";
export const ETCD_SERVICE = "gateway-etcd.service";

/** Where the member keeps its data and TLS files; the gateway's own are in HOST_PATHS. */
export const ETCD_PATHS = {
  dataDir: "/var/lib/etcd/gateway",
  tlsDir: "/etc/etcd/gateway",
  ca: "/etc/etcd/gateway/ca.pem",
  cert: "/etc/etcd/gateway/member.pem",
  key: "/etc/etcd/gateway/member-key.pem",
  unit: "/etc/systemd/system/gateway-etcd.service",
} as const;

export interface EtcdMemberRef {
  /** The host's name in `gateway:hosts`: the member's name. */
  readonly name: string;
  /** The host's IPv4 address: the member listens and is reached there. */
  readonly address: string;
}

/** One member of a region's etcd: itself, and every member the cluster starts with. */
export interface EtcdMemberSpec {
  readonly self: EtcdMemberRef;
  readonly members: readonly EtcdMemberRef[];
  /** Keeps two regions' members from ever joining each other: the stack's name. */
  readonly token: string;
}

export interface EtcdMemberFiles {
  readonly dataDir: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

const url = (address: string, port: number) =>
  `https://${address.includes(":") ? `[${address}]` : address}:${port}`;

/** `address:2379` of every member: the gateways' `core.cluster.etcd.endpoints`. */
export function etcdEndpoints(members: readonly EtcdMemberRef[]): string[] {
  return members.map((m) => `${m.address}:${ETCD_PORTS.client}`);
}

/**
 * The member's flags (etcd 3.4). Both listeners are TLS with client certificates required and
 * trusted only from the region's CA, so only the region's members and gateways get in:
 * `--client-cert-auth` for clients, `--peer-client-cert-auth` for peers. `initial-*` matter
 * only at the first start; a member with data rejoins from its data directory. Periodic
 * compaction keeps an hour of history: the gateways' watches resume within it (or reload), and
 * without it the database grows until etcd's space quota stops every write.
 */
export function etcdMemberArgs(
  spec: EtcdMemberSpec,
  files: EtcdMemberFiles = ETCD_PATHS,
): string[] {
  const { self } = spec;
  const cluster = spec.members.map((m) => `${m.name}=${url(m.address, ETCD_PORTS.peer)}`);
  return [
    `--name=${self.name}`,
    `--data-dir=${files.dataDir}`,
    `--listen-peer-urls=${url(self.address, ETCD_PORTS.peer)}`,
    `--initial-advertise-peer-urls=${url(self.address, ETCD_PORTS.peer)}`,
    `--listen-client-urls=${url(self.address, ETCD_PORTS.client)}`,
    `--advertise-client-urls=${url(self.address, ETCD_PORTS.client)}`,
    `--initial-cluster=${cluster.join(",")}`,
    "--initial-cluster-state=new",
    `--initial-cluster-token=${spec.token}`,
    "--client-cert-auth",
    `--trusted-ca-file=${files.ca}`,
    `--cert-file=${files.cert}`,
    `--key-file=${files.key}`,
    "--peer-client-cert-auth",
    `--peer-trusted-ca-file=${files.ca}`,
    `--peer-cert-file=${files.cert}`,
    `--peer-key-file=${files.key}`,
    "--auto-compaction-mode=periodic",
    "--auto-compaction-retention=1h",
    "--logger=zap",
    "--log-outputs=stderr",
  ];
}

/**
 * The member's hardened unit, in the style of the gateway's: its own user, no capabilities (the
 * ports are above 1024), a read-only system but its data directory. `Type=notify`: etcd says
 * ready once it has joined a quorum, and a member alone waits for the others however long
 * they take (`TimeoutStartSec=infinity`), so the hosts of a region start in any order.
 */
export function etcdUnitFile(spec: EtcdMemberSpec): string {
  return `${HEADER}
[Unit]
Description=etcd member of the TLS gateway's region (registrations shared by its hosts)
Wants=network-online.target
After=network-online.target gateway-firewall.service

[Service]
Type=notify
User=${ETCD_USER}
Group=${ETCD_USER}
ExecStart=/usr/bin/etcd ${etcdMemberArgs(spec).join(" ")}
Restart=on-failure
RestartSec=5s
TimeoutStartSec=infinity
LimitNOFILE=65536
UMask=0077
AmbientCapabilities=
CapabilityBoundingSet=
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${ETCD_PATHS.dataDir}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
${KERNEL_PROTECTIONS}
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
MemoryDenyWriteExecute=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`;
}

/** Writes the member's unit and enables it; the etcd restart step starts it. */
export function etcdUnitScript(spec: EtcdMemberSpec): string {
  return `#!/bin/sh
set -eu
tmp=$(mktemp /etc/systemd/system/.gateway-etcd.XXXXXX)
cat > "$tmp" ${heredoc(etcdUnitFile(spec), "GATEWAY_ETCD_UNIT")}
chmod 0644 "$tmp"
mv -f "$tmp" ${ETCD_PATHS.unit}
systemctl daemon-reload
systemctl enable ${ETCD_SERVICE}
`;
}

/**
 * The unit step's delete: stops the member and removes its unit; the data stays, as the
 * gateway's state does (UNIT_DELETE), so a later deploy finds the member's data again.
 */
export const ETCD_UNIT_DELETE = `#!/bin/sh
set -eu
systemctl disable --now ${ETCD_SERVICE} || true
rm -f ${ETCD_PATHS.unit}
systemctl daemon-reload
`;

/**
 * Restarts the member without waiting: it is ready only with a quorum, which needs the other
 * hosts' members, and those are deployed in parallel (or later). The gateway retries etcd.
 */
export const ETCD_RESTART = `#!/bin/sh
set -eu
systemctl restart --no-block ${ETCD_SERVICE}
echo "etcd member restarting (it serves once a quorum of the region's members runs)"
`;

/** Which TLS files a host gets: the member's own, and the gateway's CA and client pair. */
export interface EtcdTlsShape {
  /** The host runs a member: its CA, certificate and key, for user etcd. */
  readonly member: boolean;
  /** The gateway's `core.cluster.etcd.ca_file`. */
  readonly ca: boolean;
  /** The gateway's `cert_file` and `key_file`. */
  readonly client: boolean;
}

/** The PEM texts behind `EtcdTlsShape`; keys are secrets. */
export interface EtcdTlsPems {
  readonly ca?: string | undefined;
  readonly memberCert?: string | undefined;
  readonly memberKey?: string | undefined;
  readonly clientCert?: string | undefined;
  readonly clientKey?: string | undefined;
}

interface TlsFile {
  readonly pem: keyof EtcdTlsPems;
  readonly path: string;
  readonly owner: string;
  readonly mode: "0600" | "0644";
}

/** The files, in the order their PEM blocks come on the step's stdin. */
function tlsFiles(shape: EtcdTlsShape): TlsFile[] {
  const file = (pem: TlsFile["pem"], path: string, owner: string, mode: TlsFile["mode"]) => ({
    pem,
    path,
    owner,
    mode,
  });
  return [
    ...(shape.member
      ? [
          file("ca", ETCD_PATHS.ca, ETCD_USER, "0644"),
          file("memberCert", ETCD_PATHS.cert, ETCD_USER, "0644"),
          file("memberKey", ETCD_PATHS.key, ETCD_USER, "0600"),
        ]
      : []),
    ...(shape.ca ? [file("ca", HOST_PATHS.etcdCa, SERVICE_USER, "0600")] : []),
    ...(shape.client
      ? [
          file("clientCert", HOST_PATHS.etcdClientCert, SERVICE_USER, "0600"),
          file("clientKey", HOST_PATHS.etcdClientKey, SERVICE_USER, "0600"),
        ]
      : []),
  ];
}

const PEM_BLOCK = /^-----BEGIN ([A-Z ]+)-----\n[A-Za-z0-9+/=\n]+-----END \1-----\n$/;

/** The step's stdin: one PEM block per file, in `tlsFiles` order. A secret: it holds keys. */
export function etcdTlsStdin(shape: EtcdTlsShape, pems: EtcdTlsPems): string {
  return tlsFiles(shape)
    .map(({ pem }) => {
      const text = `${(pems[pem] ?? "").replaceAll("\r\n", "\n").trim()}\n`;
      // One block each: the script splits stdin at END lines. The error names the slot only.
      if (!PEM_BLOCK.test(text)) throw new Error(`etcd TLS: ${pem} must be one PEM block`);
      return text;
    })
    .join("");
}

/**
 * Installs the etcd TLS files from stdin (never from the script text, which is logged and kept
 * in plain state): one PEM block per file, split at END lines into a 0700 directory, then each
 * installed with its owner and mode (keys 0600: the gateway reads its client key, etcd its own).
 */
export function etcdTlsScript(shape: EtcdTlsShape): string {
  const files = tlsFiles(shape);
  const installs = files.map(
    (f, i) => `install -m ${f.mode} -o ${f.owner} -g ${f.owner} "$tmp/${i}" ${f.path}`,
  );
  return `#!/bin/sh
set -eu
umask 077
${shape.member ? `install -d -m 0755 -o root -g root ${ETCD_PATHS.tlsDir}\n` : ""}tmp=$(mktemp -d ${HOST_PATHS.configDir}/.etcd-tls.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" -v n=0 '{ print > (dir "/" n) } /^-----END / { close(dir "/" n); n++ }'
if [ ! -f "$tmp/${files.length - 1}" ] || [ -f "$tmp/${files.length}" ]; then
  echo "expected ${files.length} PEM blocks on stdin" >&2
  exit 1
fi
${installs.join("\n")}
echo "etcd TLS files installed"
`;
}

/** etcd's ports, open to the region's other hosts only (this host's own traffic is on lo). */
export function etcdRules(peers: readonly string[]): string[] {
  if (peers.length === 0) return [];
  const ports = `{ ${ETCD_PORTS.client}, ${ETCD_PORTS.peer} }`;
  return [
    `\t\tip saddr { ${peers.join(", ")} } tcp dport ${ports} accept comment "etcd: the region's other hosts"`,
  ];
}

/**
 * Setup lines of a host running an etcd member: Debian's package, and its own unit masked (it
 * would run a second, unrelated single-member etcd on localhost), the member's data directory.
 */
export function etcdSetup(layout: HostLayout): string {
  if (layout.etcdPeers === undefined) return "";
  return `apt_install etcd-server
systemctl mask --now etcd.service
id -u ${ETCD_USER} >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/etcd --no-create-home --shell /usr/sbin/nologin ${ETCD_USER}
install -d -m 0700 -o ${ETCD_USER} -g ${ETCD_USER} ${ETCD_PATHS.dataDir}
`;
}
