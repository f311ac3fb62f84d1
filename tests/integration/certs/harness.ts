/**
 * A certificate lab: a real BIND for the base domain or a zone above it (RFC 2136 + TSIG) and a real pebble that
 * validates DNS-01 against it, plus configs for CertificateManager pointing at both.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CertificateManager,
  type CertificateManagerOptions,
} from "../../../gateway-runtime/certs/index.js";
import { type GatewayConfig, parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { type BindServer, startBind } from "../../helpers/bind.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { type Pebble, type PebbleOptions, startPebble } from "../../helpers/pebble.js";

export const BASE = "app.test.example";
export const NAMES = [`*.${BASE}`, BASE];
export const CHALLENGE = `_acme-challenge.${BASE}`;

export interface CertLab {
  readonly bind: BindServer;
  readonly pebble: Pebble;
  /** A fresh work directory (removed by `close`). */
  workdir(): string;
  /** A parsed config for a manager in `workdir`; `overrides` are dotted keys under the root. */
  config(workdir: string, overrides?: Record<string, unknown>): GatewayConfig;
  manager(
    workdir: string,
    overrides?: Record<string, unknown>,
    opts?: Partial<CertificateManagerOptions>,
  ): CertificateManager;
  close(): Promise<void>;
}

export async function startCertLab(
  opts: {
    pebble?: Partial<PebbleOptions>;
    records?: string[];
    pebbleDns?: string;
    /** The zone BIND serves and the managers update. @default BASE */
    zone?: string;
  } = {},
): Promise<CertLab> {
  const zone = opts.zone ?? BASE;
  const bind = await startBind({ zone, ...(opts.records ? { records: opts.records } : {}) });
  let pebble: Pebble;
  try {
    pebble = await startPebble({ dnsServer: opts.pebbleDns ?? bind.address, ...opts.pebble });
  } catch (e) {
    await bind.close();
    throw e;
  }
  const dirs: string[] = [];
  const managers: CertificateManager[] = [];

  const config = (workdir: string, overrides: Record<string, unknown> = {}): GatewayConfig => {
    let raw = minimalConfig();
    const settings: Record<string, unknown> = {
      "core.proxy.base_domain": BASE,
      // Under the wildcard: the certificate is exactly NAMES (rpc-domain.test.ts moves it out).
      "core.rpc_domain": `rpc.${BASE}`,
      "core.proxy.cert_chain": join(workdir, "live", "cert.pem"),
      "core.proxy.cert_key": join(workdir, "live", "key.pem"),
      "core.certbot": {
        enabled: true,
        workdir,
        acme_url: pebble.directoryUrl,
        acme_ca_file: pebble.caFile,
        contact_email: "ops@app.test.example",
        domain: `*.${BASE}`,
        auto_set_caa: true,
        dns_provider: "rfc2136",
        rfc2136: {
          server: bind.address,
          zone,
          tsig_key_name: bind.keyName,
          tsig_algorithm: bind.algorithm,
          tsig_secret: bind.secret,
        },
        dns_check_timeout: "5s",
        renew_timeout: "20s",
        renew_interval: "1h",
      },
      ...overrides,
    };
    for (const [key, value] of Object.entries(settings)) raw = withKey(raw, key, value);
    return parseGatewayConfig(raw, "cert lab");
  };

  return {
    bind,
    pebble,
    workdir() {
      const dir = mkdtempSync(join(tmpdir(), "gw-certs-work-"));
      dirs.push(dir);
      return dir;
    },
    config,
    manager(workdir, overrides = {}, extra = {}) {
      const m = new CertificateManager({
        config: config(workdir, overrides),
        log: silentLogger(),
        backoff: { initialMs: 60_000, maxMs: 600_000 },
        ...extra,
      });
      managers.push(m);
      return m;
    },
    async close() {
      try {
        for (const m of managers) await m.stop();
        await pebble.close();
        await bind.close();
      } finally {
        // A manager or server that fails to stop still must not leave the workdirs behind.
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
      }
    },
  };
}
