import { cpSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alive, daemon, ok, sh, step, stopDaemon, waitUntil } from "./exec.js";
import { labNode, labNodeDir } from "./node.js";
import {
  FIRST_GATEWAY,
  LAB,
  type LabGatewaySpec,
  labDir,
  labPath,
  readJson,
  writeJson,
} from "./state.js";

export interface LabHost {
  /** Its name in `gateway:hosts`. */
  readonly name: string;
  readonly address: string;
  readonly user: "root";
  readonly keyFile: string;
  readonly pid: number;
  /** Started by this run: a rebuilt host, which has none of what earlier deploys put in place. */
  readonly fresh?: boolean;
}

/** Files of a gateway host under .lab/: the first keeps `host/` (the deploy key lives there). */
const hostDirName = (spec: LabGatewaySpec) =>
  spec.name === FIRST_GATEWAY.name ? "host" : `host-${spec.name}`;
const stateFile = (spec: LabGatewaySpec) => labPath(`${hostDirName(spec)}.json`);

/** The deploy key every gateway host of the lab trusts (`gateway:sshPrivateKey`). */
export async function deployKeyFile(): Promise<string> {
  const keyFile = join(labDir("host"), "deploy_key");
  if (!existsSync(keyFile))
    await sh("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "gateway-lab-deploy",
      "-f",
      keyFile,
    ]);
  return keyFile;
}

/** The region's gateway hosts, one after the other. */
export async function hostsUp(specs: readonly LabGatewaySpec[]): Promise<LabHost[]> {
  const hosts: LabHost[] = [];
  for (const spec of specs) hosts.push(await hostUp(spec));
  return hosts;
}

/** A gateway host: a namespace running sshd, which the deploy step reaches like any server. */
async function hostUp(spec: LabGatewaySpec): Promise<LabHost> {
  const dir = labDir(hostDirName(spec));
  const keyFile = await deployKeyFile();
  if (!existsSync(join(dir, "host_key")))
    await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
  const previous = readJson<LabHost>(stateFile(spec));
  const nodeDir = await labNodeDir();
  const nodeVersion = (await sh(await labNode(), ["--version"])).trim();
  // Reachable with the pinned node first on PATH: a host started by an older lab gets restarted.
  const reachable = () =>
    ok("ssh", [
      ...sshOptions(keyFile),
      `root@${spec.address}`,
      `test "$(node --version)" = ${nodeVersion}`,
    ]);
  if (previous?.name === spec.name && alive(previous.pid) && (await reachable())) {
    step(`gateway host ${spec.name}: sshd already up at ${spec.address}`);
    return previous;
  }
  await stopDaemon(previous?.pid);
  writeFileSync(join(dir, "authorized_keys"), `${(await sh("cat", [`${keyFile}.pub`])).trim()}\n`, {
    mode: 0o600,
  });
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `ListenAddress ${spec.address}:22`,
      `HostKey ${join(dir, "host_key")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "Subsystem sftp internal-sftp",
      "",
    ].join("\n"),
  );
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  step(`gateway host ${spec.name}: starting sshd in ${spec.ns} at ${spec.address}:22`);
  const pid = daemon(
    "unshare",
    ["--mount", "--propagation", "private", "sh", "-c", hostMounts(dir, nodeDir)],
    { ns: spec.ns, logFile: join(dir, "sshd.log") },
  );
  await waitUntil(`sshd on gateway host ${spec.name}`, reachable, 15_000);
  const host: LabHost = { name: spec.name, address: spec.address, user: "root", keyFile, pid };
  writeJson(stateFile(spec), host);
  return { ...host, fresh: true };
}

/** The hosts a running lab has (for destroy): undefined when one of `specs` is not running. */
export function runningHosts(specs: readonly LabGatewaySpec[]): LabHost[] | undefined {
  const hosts = specs.map((spec) => readJson<LabHost>(stateFile(spec)));
  return hosts.every((h): h is LabHost => h !== undefined && alive(h.pid)) ? hosts : undefined;
}

/** Paths the Pulumi program's scripts write on a host; they get private copies in the host's mount namespace. */
export const HOST_MOUNT_POINTS = ["/opt/gateway", "/var/lib/gateway"] as const;

/**
 * Directories of this machine's packages that a host writes too (the etcd member's data):
 * private copies as well, but the directory stays when the lab goes down, as the package made it.
 */
const PACKAGE_DIRS = ["/var/lib/etcd"] as const;

/** `/var/lib/gateway` → `var-lib-gateway`: the host's copy under its root dir. */
const copyName = (point: string) => point.slice(1).replaceAll("/", "-");

/**
 * The gateway host is a network namespace plus a mount namespace: its own /etc (a copy), /run,
 * /opt/gateway, /var/lib/gateway and /var/lib/etcd, so the setup script's users, units and files
 * stay inside the lab and each host of a region has its own; the lab's systemctl/journalctl
 * stand-ins first in PATH (/usr/local/sbin), since a namespace has no systemd; and the pinned
 * node (`nodeDir`, which holds only `node`) as /usr/local/bin, ahead of this machine's
 * /usr/bin/node in every PATH on the host (sshd's, the units'), as a host where NodeSource
 * installed it. Everything else (packages) is this machine's.
 */
function hostMounts(dir: string, nodeDir: string): string {
  const root = join(dir, "root");
  const points = [...HOST_MOUNT_POINTS, ...PACKAGE_DIRS];
  for (const point of points) {
    mkdirSync(join(root, copyName(point)), { recursive: true });
    mkdirSync(point, { recursive: true });
  }
  if (!existsSync(join(root, "etc")))
    cpSync("/etc", join(root, "etc"), { recursive: true, verbatimSymlinks: true });
  const shims = join(import.meta.dirname, "shims");
  return [
    "set -e",
    "mount -t tmpfs -o mode=0755 lab-run /run",
    "mkdir -p /run/sshd",
    // Debian hosts have /dev/net/tun 0666 (the service user opens it for wireguard-go); this
    // machine's is 0600, so the host gets a node of its own with the usual mode.
    "mknod -m 0666 /run/lab-tun c 10 200",
    "mount --bind /run/lab-tun /dev/net/tun",
    `mount --bind ${join(root, "etc")} /etc`,
    ...points.map((point) => `mount --bind ${join(root, copyName(point))} ${point}`),
    `mount --bind ${shims} /usr/local/sbin`,
    `mount --bind ${nodeDir} /usr/local/bin`,
    `exec /usr/sbin/sshd -D -e -f ${join(dir, "sshd_config")}`,
  ].join("\n");
}

export function sshOptions(keyFile: string): string[] {
  return [
    "-i",
    keyFile,
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=5",
  ];
}

/** Runs a shell command on the gateway host over SSH, with `stdin` fed to it. */
export function ssh(
  host: LabHost,
  command: string,
  stdin = "",
  timeoutMs = 300_000,
): Promise<string> {
  return sh("ssh", [...sshOptions(host.keyFile), `${host.user}@${host.address}`, command], {
    input: stdin,
    timeoutMs,
  });
}

/** Stops every gateway host the lab may have started, whatever the region size. */
export async function hostsDown(): Promise<void> {
  for (const spec of LAB.gateways) await stopDaemon(readJson<LabHost>(stateFile(spec))?.pid);
}
