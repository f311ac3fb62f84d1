/**
 * Everything a gateway host runs, as text: pure functions of the host layout. `GatewayHost`
 * sends these as `remote.Command` scripts (config on stdin), and the local lab runs exactly the
 * same text, so each script is self-contained POSIX sh with no environment of its own.
 */
import {
  HOST_PATHS,
  HOST_SYSCTLS,
  NODE_FLAGS,
  NODE_MAJOR,
  type HostLayout,
  HEADER,
  heredoc,
  KERNEL_PROTECTIONS,
  SERVICE_NAME,
  SERVICE_USER,
  serviceDirectories,
  sha256,
} from "./layout.js";
import { alertRulesFile } from "./alerts.js";
import { etcdRules, etcdSetup } from "./etcd.js";
import { restartScript } from "./restart.js";
import { socketUnits } from "./sockets.js";

/** nftables rules: one table of our own, replaced atomically; other tables are left alone. */
export function firewallRules(layout: HostLayout): string {
  const rule = (proto: "tcp" | "udp", port: number, what: string) =>
    `\t\t${proto} dport ${port} accept comment "${what}"`;
  return [
    "#!/usr/sbin/nft -f",
    HEADER,
    "table inet gateway",
    "delete table inet gateway",
    "table inet gateway {",
    "\tchain input {",
    "\t\ttype filter hook input priority filter; policy drop;",
    "\t\tct state established,related accept",
    "\t\tct state invalid drop",
    '\t\tiif "lo" accept',
    "\t\tmeta l4proto { icmp, ipv6-icmp } accept",
    '\t\tudp dport { 68, 546 } accept comment "DHCP replies"',
    rule("tcp", layout.sshPort, "ssh"),
    rule("tcp", layout.tlsPort, "TLS proxy"),
    ...(layout.httpPort === undefined ? [] : [rule("tcp", layout.httpPort, "http redirect")]),
    rule("tcp", layout.rpcPort, "registration RPC"),
    rule("udp", layout.wireguardPort, "WireGuard"),
    ...etcdRules(layout.etcdPeers ?? []),
    ...(layout.adminPort === undefined
      ? []
      : [`\t\ttcp dport ${layout.adminPort} counter drop comment "admin API: this host only"`]),
    "\t}",
    "}",
    "",
  ].join("\n");
}

const FIREWALL_UNIT = `${HEADER}
[Unit]
Description=Firewall of the TLS gateway (nftables table inet gateway)
DefaultDependencies=no
Before=network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f ${HOST_PATHS.firewall}
ExecStop=/usr/sbin/nft delete table inet gateway

[Install]
WantedBy=multi-user.target
`;

/** `HOST_SYSCTLS` as a sysctl.d file. */
export function sysctlFile(): string {
  const lines = HOST_SYSCTLS.map(({ key, value, why }) => `# ${why}\n${key} = ${value}`);
  return `${HEADER}\n${lines.join("\n")}\n`;
}

/**
 * Sets one of `HOST_SYSCTLS` now. A host whose /proc/sys is read-only (a container) gets a
 * warning, not a failed setup: the gateway works without these, only with lower limits.
 */
function applySysctl({ key, value, why }: (typeof HOST_SYSCTLS)[number]): string {
  const warning = `warning: could not set ${key} = ${value} (read-only /proc/sys?): the gateway runs without it, with lower limits (${why})`;
  return `echo ${value} 2>/dev/null > /proc/sys/${key.replaceAll(".", "/")} || echo ${JSON.stringify(warning)} >&2`;
}

/**
 * The idempotent host setup: packages (Node `nodeMajor` from NodeSource only when node is
 * missing or older), the service user, 0700 directories, the kernel settings, the firewall. A
 * second run changes nothing. Below `NODE_MAJOR` is refused: the bundle targets it.
 */
/**
 * The haproxy engine: Debian's package, whose own service is masked. The gateway runs HAProxy
 * itself, from the configuration it renders; the packaged service would start one more HAProxy
 * from /etc/haproxy at every boot.
 */
function haproxySetup(layout: HostLayout): string {
  if (!layout.haproxy) return "";
  return `apt_install haproxy
systemctl disable --now haproxy.service >/dev/null 2>&1 || true
systemctl mask haproxy.service >/dev/null
`;
}

export function setupScript(layout: HostLayout, nodeMajor = NODE_MAJOR): string {
  if (!Number.isInteger(nodeMajor) || nodeMajor < NODE_MAJOR) {
    throw new Error(`nodeMajor must be an integer >= ${NODE_MAJOR}, got ${nodeMajor}`);
  }
  const dirs = serviceDirectories(layout).join(" ");
  return `#!/bin/sh
set -eu
# Gateway host setup (cvm-tls-gateway). Idempotent: a second run changes nothing.
[ "$(id -u)" -eq 0 ] || { echo "gateway setup must run as root" >&2; exit 1; }
command -v apt-get >/dev/null 2>&1 || { echo "gateway setup supports Debian and Ubuntu hosts (apt) only" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt_updated=no
apt_install() {
  missing=""
  for pkg in "$@"; do
    dpkg-query -W -f='\${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
  [ -n "$missing" ] || return 0
  if [ "$apt_updated" = no ]; then apt-get update -q; apt_updated=yes; fi
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
}
apt_install ca-certificates curl gnupg iproute2 nftables wireguard-tools
${etcdSetup(layout)}${haproxySetup(layout)}if modprobe wireguard 2>/dev/null || [ -d /sys/module/wireguard ]; then
  echo wireguard > /etc/modules-load.d/gateway-wireguard.conf
else
  echo "no WireGuard kernel module: using wireguard-go"
  apt_install wireguard-go
fi
node_major() { if command -v node >/dev/null 2>&1; then node -p 'process.versions.node.split(".")[0]'; else echo 0; fi; }
node_major=$(node_major)
if [ "$node_major" -lt ${nodeMajor} ]; then
  echo "node $node_major is missing or older than ${nodeMajor}: installing Node.js ${nodeMajor} from NodeSource"
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
  echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_${nodeMajor}.x nodistro main" > /etc/apt/sources.list.d/nodesource.list
  apt-get update -q
  apt-get install -y -q nodejs
  node_major=$(node_major)
  [ "$node_major" -ge ${nodeMajor} ] || {
    echo "node on PATH ($(command -v node)) is still $node_major after installing Node.js ${nodeMajor}: remove the older one first" >&2
    exit 1
  }
fi
id -u ${SERVICE_USER} >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/gateway --no-create-home --shell /usr/sbin/nologin ${SERVICE_USER}
install -d -m 0700 -o ${SERVICE_USER} -g ${SERVICE_USER} ${dirs}
install -d -m 0755 -o root -g root ${HOST_PATHS.installDir}
tmp=$(mktemp ${HOST_PATHS.installDir}/.firewall.XXXXXX)
cat > "$tmp" ${heredoc(firewallRules(layout), "GATEWAY_NFT")}
chmod 0644 "$tmp"
mv -f "$tmp" ${HOST_PATHS.firewall}
nft -f ${HOST_PATHS.firewall}
tmp=$(mktemp ${HOST_PATHS.installDir}/.rules.XXXXXX)
cat > "$tmp" ${heredoc(alertRulesFile(), "GATEWAY_RULES")}
chmod 0644 "$tmp"
mv -f "$tmp" ${HOST_PATHS.alertRules}
cat > ${HOST_PATHS.sysctl} ${heredoc(sysctlFile(), "GATEWAY_SYSCTL")}
${HOST_SYSCTLS.map(applySysctl).join("\n")}
cat > ${HOST_PATHS.firewallUnit} ${heredoc(FIREWALL_UNIT, "GATEWAY_UNIT")}
systemctl daemon-reload
systemctl enable gateway-firewall.service
echo "gateway host setup done"
`;
}

/**
 * The hardened systemd unit of the gateway: only the two capabilities it needs, a read-only system.
 * A restart is a hand-over (README "What a deploy does"): the socket units keep the ports,
 * `KillMode=process` signals the main process only, so the old proxy workers drain their
 * connections (`core.proxy.drain_timeout`) beside the new generation, and wireguard-go (which
 * the gateway leaves running) keeps the tunnels. The runtime directories outlive a stop
 * (`RuntimeDirectoryPreserve=yes`): wireguard-go's control socket is in /run/wireguard.
 * `reload` stays a certificate re-read (SIGHUP); a new bundle or config takes a restart.
 */
export function unitFile(layout: HostLayout): string {
  const sockets = socketUnits(layout)
    .map((u) => u.name)
    .join(" ");
  return `${HEADER}
[Unit]
Description=TLS gateway for confidential VMs
Wants=network-online.target
Requires=${sockets}
After=network-online.target gateway-firewall.service ${sockets}

[Service]
Type=simple
User=${SERVICE_USER}
Group=${SERVICE_USER}
Sockets=${sockets}
ExecStart=/usr/bin/env node ${NODE_FLAGS.join(" ")} ${HOST_PATHS.bundle} run --config ${HOST_PATHS.config} --ready-file ${HOST_PATHS.ready}
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
Restart=on-failure
RestartSec=2s
TimeoutStopSec=30s
LimitNOFILE=524288
UMask=0077
AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_ADMIN
CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_ADMIN
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${layout.writablePaths.join(" ")}
ProtectHome=yes
PrivateTmp=yes
RuntimeDirectory=wireguard gateway
RuntimeDirectoryMode=0700
RuntimeDirectoryPreserve=yes
DevicePolicy=closed
DeviceAllow=/dev/net/tun rw
${KERNEL_PROTECTIONS}
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`;
}

/**
 * Writes the units atomically and enables them; the restart step starts them. A socket unit
 * whose text changed (a port moved) is restarted with the gateway stopped: the old port's
 * queue cannot carry over, and the running gateway would hold the port the new one binds.
 */
export function unitScript(layout: HostLayout): string {
  const sockets = socketUnits(layout).map(
    (u) => `tmp=$(mktemp /etc/systemd/system/.gateway.XXXXXX)
cat > "$tmp" ${heredoc(u.text, "GATEWAY_SOCKET")}
chmod 0644 "$tmp"
if ! cmp -s "$tmp" ${u.path}; then moved="$moved ${u.name}"; fi
mv -f "$tmp" ${u.path}
`,
  );
  return `#!/bin/sh
set -eu
moved=""
${sockets.join("")}tmp=$(mktemp /etc/systemd/system/.gateway.XXXXXX)
cat > "$tmp" ${heredoc(unitFile(layout), "GATEWAY_UNIT")}
chmod 0644 "$tmp"
mv -f "$tmp" ${HOST_PATHS.unit}
systemctl daemon-reload
systemctl enable ${SERVICE_NAME}
${socketUnits(layout)
  .map((u) => `systemctl enable ${u.name}`)
  .join("\n")}
if [ -n "$moved" ] && systemctl is-active --quiet ${SERVICE_NAME}; then
  echo "socket units changed ($moved): the gateway stops while they move"
  systemctl stop ${SERVICE_NAME}
fi
for s in $moved; do systemctl restart "$s"; done
`;
}

/**
 * The unit step's delete (`pulumi destroy`): stops and disables the gateway and removes its
 * unit. It sits on the unit step because that step is never replaced (it has no triggers):
 * a replaced step runs its old delete after the new create, which would stop a fresh gateway.
 * State, certificates and WireGuard config stay, so a later deploy picks them up.
 */
export const UNIT_DELETE = `#!/bin/sh
set -eu
systemctl disable --now ${SERVICE_NAME} || true
for s in gateway-tls.socket gateway-http.socket gateway-rpc.socket; do
  systemctl disable --now "$s" || true
  rm -f "/etc/systemd/system/$s"
done
rm -f ${HOST_PATHS.unit}
systemctl daemon-reload
`;

const PEM_CERTS =
  /^(?:-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?)+$/;

/** Shell lines installing a public CA bundle (validated PEM) at `path`, readable by the service only. */
function caFileLines(what: string, pemText: string | undefined, path: string): string {
  if (pemText === undefined) return "";
  const pem = `${pemText.replaceAll("\r\n", "\n").trim()}\n`;
  if (!PEM_CERTS.test(pem)) throw new Error(`${what} must be PEM CERTIFICATE blocks only`);
  return `ca=$(mktemp ${HOST_PATHS.configDir}/.ca.XXXXXX)
cat > "$ca" ${heredoc(pem, "GATEWAY_PEM")}
chown ${SERVICE_USER}:${SERVICE_USER} "$ca"
mv -f "$ca" ${path}
`;
}

/**
 * Installs the config read from stdin (mode 0600, owned by the service user) once the runtime's
 * own `check-config --on-host` accepts it: the schema, and every file the config makes the
 * gateway read present on the host (the CA files are written first, for that). A rejected
 * config leaves the running one in place. The config never appears in the script text; the
 * problem list is printed without values.
 */
export function configScript(acmeCaPem?: string, attestationCaPem?: string): string {
  const ca =
    caFileLines("acmeCaPem", acmeCaPem, HOST_PATHS.acmeCa) +
    caFileLines("attestationCaPem", attestationCaPem, HOST_PATHS.attestationCa);
  return `#!/bin/sh
set -eu
umask 077
${ca}tmp=$(mktemp --suffix=.toml ${HOST_PATHS.configDir}/.gateway-new.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chown ${SERVICE_USER}:${SERVICE_USER} "$tmp"
if ! problems=$(node ${HOST_PATHS.bundle} check-config --on-host "$tmp" 2>&1 >/dev/null); then
  echo "check-config rejected the new gateway config; the installed one stays:" >&2
  printf '%s\\n' "$problems" | sed 's/, got .*$//' >&2
  exit 1
fi
mv -f "$tmp" ${HOST_PATHS.config}
trap - EXIT
echo "gateway config installed"
`;
}

/** Every script and file of one host, with the digests that decide what runs again. */
export interface HostFiles {
  readonly setup: string;
  readonly unit: string;
  readonly unitScript: string;
  readonly configScript: string;
  readonly restart: string;
  /** Changes when the unit text changes: the gateway restarts. */
  readonly unitDigest: string;
}

export interface HostFilesOptions {
  readonly layout: HostLayout;
  readonly acmeCaPem?: string | undefined;
  readonly attestationCaPem?: string | undefined;
  readonly nodeMajor?: number | undefined;
  readonly readyTimeoutSeconds?: number | undefined;
}

export function hostFiles(opts: HostFilesOptions): HostFiles {
  const unit = unitFile(opts.layout);
  return {
    setup: setupScript(opts.layout, opts.nodeMajor),
    unit,
    unitScript: unitScript(opts.layout),
    configScript: configScript(opts.acmeCaPem, opts.attestationCaPem),
    restart: restartScript(opts.layout, opts.readyTimeoutSeconds),
    unitDigest: sha256([unit, ...socketUnits(opts.layout).map((u) => u.text)].join("\0")),
  };
}

/**
 * Which CA and TLS files a host gets: `gateway:acmeCaPem` and `gateway:attestationCaPem` are
 * region-wide; the etcd CA and client pair come with `core.cluster` (the region's own PKI when
 * the program runs etcd, else `gateway:etcdCaPem` and `gateway:etcdClientCertPem`).
 */
export interface ShippedCas {
  readonly acmeCa: boolean;
  readonly attestationCa: boolean;
  readonly etcdCa?: boolean | undefined;
  readonly etcdClient?: boolean | undefined;
}

/**
 * Every file `GatewayHost` puts on a host, by path: the bundle, the config, the unit, the
 * firewall, the kernel settings, and the CA files `configScript` writes when the stack gives
 * their PEM. The program checks the gateway config against this list at preview (host/config.ts).
 */
export function shippedFiles(cas: ShippedCas): string[] {
  return [
    HOST_PATHS.bundle,
    HOST_PATHS.config,
    HOST_PATHS.unit,
    // The socket units (host/sockets.ts); gateway-http.socket only with the redirect.
    "/etc/systemd/system/gateway-tls.socket",
    "/etc/systemd/system/gateway-http.socket",
    "/etc/systemd/system/gateway-rpc.socket",
    HOST_PATHS.firewall,
    HOST_PATHS.firewallUnit,
    HOST_PATHS.sysctl,
    HOST_PATHS.alertRules,
    ...(cas.acmeCa ? [HOST_PATHS.acmeCa] : []),
    ...(cas.attestationCa ? [HOST_PATHS.attestationCa] : []),
    ...(cas.etcdCa ? [HOST_PATHS.etcdCa] : []),
    ...(cas.etcdClient ? [HOST_PATHS.etcdClientCert, HOST_PATHS.etcdClientKey] : []),
  ];
}

/**
 * Changes when the config or the CA file the config step writes changes: the gateway restarts.
 * Also the digest of the etcd TLS step (its script and its stdin of PEM blocks).
 */
export function configDigest(configToml: string, configStepScript: string): string {
  return sha256(`${configStepScript}\0${configToml}`);
}
