import { posix } from "node:path";
import { ConfigError, type ConfigProblem } from "./errors.js";
import type { GatewayConfig, OperatorConfig } from "./types.js";

/** A host's config, or a stack's: the file keys are the same in both. */
type AnyConfig = GatewayConfig | OperatorConfig;

/**
 * Files a config makes the gateway READ at start or at registration, and a pure check that each
 * is among the files that will exist on the host. A schema-valid config can still name a file
 * nobody put there; the gateway then fails on the host only (E_ATTEST_CONFIG, E_CERT_CONFIG, a
 * certificate it cannot load). `check-config` runs this check against the real filesystem on a
 * host, and the Pulumi program against the files it ships, so both catch the same mistake.
 *
 * Every key of the schema that names a file, and why it is in or out:
 * - `core.attestation.ca_file` IN when `mode` is "ca": registration reads it before the RPC
 *   server starts (start.ts). Mode "tdx" never reads it: the TDX quote is the trust anchor.
 * - `core.certbot.acme_ca_file` IN when certbot is enabled and the key is set: the first ACME
 *   request reads it (certs/acme/http.ts), right at start when there is no certificate yet.
 *   With certbot disabled nothing contacts ACME.
 * - `core.proxy.cert_chain`, `core.proxy.cert_key` IN only when certbot is disabled: the proxy
 *   and the RPC server load them at start. With certbot enabled they must be
 *   `<workdir>/live/...` (checks.ts), which the certificate manager writes before anything serves.
 * - `core.admin.auth_token_file`, `core.admin.htpasswd_file` IN when the admin API is enabled
 *   and the key is set: read at start to authenticate admin requests (admin/auth.ts).
 * - `core.admin.socket` OUT: a socket the gateway creates.
 * - `core.cluster.etcd.ca_file`, `cert_file`, `key_file` IN when the cluster is enabled and the
 *   key is set: the etcd client reads them before registration starts.
 * - `core.certbot.workdir` OUT: a directory the gateway creates and writes (account, live/).
 * - `core.state_path` OUT: written by the gateway (atomic writes); a missing file is empty state.
 * - `core.wg.config_path` OUT: rendered and written by the gateway.
 */
export const FILE_KEYS = {
  read: [
    "core.attestation.ca_file",
    "core.certbot.acme_ca_file",
    "core.proxy.cert_chain",
    "core.proxy.cert_key",
    "core.admin.auth_token_file",
    "core.admin.htpasswd_file",
    "core.cluster.etcd.ca_file",
    "core.cluster.etcd.cert_file",
    "core.cluster.etcd.key_file",
  ],
  written: ["core.certbot.workdir", "core.state_path", "core.wg.config_path"],
} as const;

export type ReadFileKey = (typeof FILE_KEYS.read)[number];

/** One file the gateway will read, and the key that names it. */
export interface FileRead {
  readonly key: ReadFileKey;
  readonly path: string;
  /** What the gateway reads it for, for the problem message. */
  readonly why: string;
}

/** The files this config makes the gateway read at start or at registration (see `FILE_KEYS`). */
export function filesReadAtStart(config: AnyConfig): FileRead[] {
  const { attestation, certbot, proxy } = config.core;
  const reads: FileRead[] = [];
  if (attestation.mode === "ca") {
    reads.push({
      key: "core.attestation.ca_file",
      path: attestation.ca_file,
      why: 'CVM client certificates must chain to it in attestation mode "ca"',
    });
  }
  if (certbot.enabled && certbot.acme_ca_file !== undefined) {
    reads.push({
      key: "core.certbot.acme_ca_file",
      path: certbot.acme_ca_file,
      why: "CAs trusted for the ACME directory",
    });
  }
  if (!certbot.enabled) {
    const why = "the served certificate, while core.certbot.enabled is false";
    reads.push({ key: "core.proxy.cert_chain", path: proxy.cert_chain, why });
    reads.push({ key: "core.proxy.cert_key", path: proxy.cert_key, why });
  }
  const { admin } = config.core;
  if (admin.enabled && admin.auth_token_file !== undefined) {
    const why = "the admin API's token";
    reads.push({ key: "core.admin.auth_token_file", path: admin.auth_token_file, why });
  }
  if (admin.enabled && admin.htpasswd_file !== undefined) {
    const why = "the admin API's users";
    reads.push({ key: "core.admin.htpasswd_file", path: admin.htpasswd_file, why });
  }
  if (config.core.cluster.enabled) {
    for (const name of ["ca_file", "cert_file", "key_file"] as const) {
      const path = config.core.cluster.etcd[name];
      const why = "TLS to the region's etcd";
      if (path !== undefined) reads.push({ key: `core.cluster.etcd.${name}`, path, why });
    }
  }
  return reads;
}

/**
 * Problems, one per file this config reads that is not in `present` (absolute paths of the files
 * that will exist on the host), each naming the key and the path. Pure: no I/O.
 */
export function checkHostFiles(config: AnyConfig, present: Iterable<string>): ConfigProblem[] {
  const there = new Set([...present].map((p) => posix.normalize(p)));
  return filesReadAtStart(config)
    .filter((read) => !there.has(posix.normalize(read.path)))
    .map((read) => ({
      path: read.key,
      message: `${read.path} is read by the gateway (${read.why}) but nothing ships it`,
    }));
}

/**
 * `checkHostFiles` that throws a ConfigError (E_CONFIG_FILE_MISSING) listing every problem,
 * `more` (the programs missing, on a host) included, so one run names them all.
 */
export function requireHostFiles(
  config: AnyConfig,
  present: Iterable<string>,
  source: string,
  more: readonly ConfigProblem[] = [],
): void {
  const problems = [...checkHostFiles(config, present), ...more];
  if (problems.length > 0) throw new ConfigError(source, problems, "E_CONFIG_FILE_MISSING");
}

/** Where Debian's `haproxy` package puts the binary the `haproxy` engine runs. */
export const HAPROXY_BINARY = "/usr/sbin/haproxy";

/** One program the gateway will run, and the key that asks for it. */
export interface ProgramRun {
  readonly key: "core.proxy.engine";
  readonly path: string;
  readonly why: string;
}

/**
 * The programs this config makes the gateway run. Kept apart from `filesReadAtStart`: the
 * program ships files but installs packages, so a program is checked on the host only
 * (`check-config --on-host`), never against the shipped list.
 */
export function programsRunAtStart(config: AnyConfig): ProgramRun[] {
  if (config.core.proxy.engine !== "haproxy") return [];
  const why = 'core.proxy.engine is "haproxy" (Debian package haproxy)';
  return [{ key: "core.proxy.engine", path: HAPROXY_BINARY, why }];
}

/** Problems, one per program this config runs that `runnable` says is not there. */
export function checkHostPrograms(
  config: AnyConfig,
  runnable: (path: string) => boolean,
): ConfigProblem[] {
  return programsRunAtStart(config)
    .filter((run) => !runnable(run.path))
    .map((run) => ({
      path: run.key,
      message: `${run.path} is run by the gateway (${run.why}) but is not an executable file here`,
    }));
}
