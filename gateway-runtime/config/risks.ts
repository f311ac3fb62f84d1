import type { GatewayConfig } from "./types.js";

/** A valid setting that leaves the gateway open in a way its operator should know about. */
export interface ConfigRisk {
  readonly path: string;
  readonly message: string;
}

/**
 * Risks of a valid config, warned at every start and noted by check-config. Not errors: each
 * has a legitimate use (a development setup, a trusted network), but none should be silent.
 */
export function configRisks(config: GatewayConfig): ConfigRisk[] {
  const risks: ConfigRisk[] = [];
  const { attestation, auth, admin, cluster } = config.core;
  if (attestation.mode === "tdx" && !auth.enabled) {
    risks.push({
      path: "core.auth.enabled",
      message:
        'is false with core.attestation.mode "tdx": any genuine TDX VM can register, under any app id it claims (the app id comes from the VM itself); set core.auth.url to a KMS that decides',
    });
  }
  if (admin.enabled && admin.insecure_no_auth) {
    risks.push({
      path: "core.admin.insecure_no_auth",
      message: "is true: any local process can call the admin API, including RenewCert",
    });
  }
  if (cluster.enabled && cluster.etcd.ca_file === undefined) {
    risks.push({
      path: "core.cluster.etcd.ca_file",
      message:
        "is unset: the connection to etcd is plain and unauthenticated, so anyone who can reach etcd can register any key under any app; set the TLS files",
    });
  }
  return risks;
}
