/**
 * A registration service over real parts (file store in a temp dir, MemoryDirectory, CA-mode
 * attestation with a test KMS), a clock the test moves, and a recording PeerApplier.
 */
import { GatewayError } from "../../../gateway-runtime/errors.js";
import { setTimeout as sleep } from "node:timers/promises";
import { CaAttestation } from "../../../gateway-runtime/attest/ca.js";
import type { Authorizer } from "../../../gateway-runtime/auth/authorize.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import {
  type PeerApplier,
  RegistrationService,
  type RegistrationServiceOptions,
  registrationSettings,
  type WgPeer,
} from "../../../gateway-runtime/registration/index.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import { FileRegistrationStore } from "../../../gateway-runtime/registry/store.js";
import { minimalConfig } from "../../../testkit/config.js";
import {
  appInfoSpec,
  createTestCa,
  issueRaTlsCert,
  type TestCert,
} from "../../../testkit/ra-tls.js";
import { DEFAULT_PLAN } from "../registry/net.js";
import { tempDir } from "../registry/temp.js";

/** Records every `setPeers` and checks that calls never overlap. */
export class FakePeers implements PeerApplier {
  readonly calls: WgPeer[][] = [];
  active = 0;
  maxActive = 0;
  delayMs = 0;
  failWith: Error | undefined;

  async setPeers(peers: readonly WgPeer[]): Promise<void> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      this.calls.push([...peers]);
      if (this.delayMs > 0) await sleep(this.delayMs);
      if (this.failWith) throw this.failWith;
    } finally {
      this.active--;
    }
  }

  get last(): WgPeer[] | undefined {
    return this.calls[this.calls.length - 1];
  }
}

export const APP = "3763bc34552cf3a27ff71ad5f7a90471562a1a2d";
export const CONFIG = parseGatewayConfig(minimalConfig(), "registration harness");
export const HOUR = 3_600_000;

/** The GatewayError code `p` rejects with, or "no error"; any other error is rethrown. */
export async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GatewayError) return err.code;
    throw err;
  }
  return "no error";
}

export interface Harness {
  readonly service: RegistrationService;
  readonly store: FileRegistrationStore;
  readonly directory: MemoryDirectory;
  readonly peers: FakePeers;
  readonly kms: TestCert;
  readonly appCa: TestCert;
  readonly clock: { now: number };
  /** Store writes (fsynced files) so far. */
  readonly writes: { count: number };
  /** A KMS-issued client certificate for an instance (hex id) of `app`. */
  cert(instanceHex: string, app?: string): TestCert;
  /** The `PeerCertificate` the RPC server would pass for `cert`. */
  peer(cert: TestCert): { der: Buffer; chain: Buffer[] };
  cleanup(): Promise<void>;
}

export async function harness(
  opts: { authorizer?: Authorizer; service?: Partial<RegistrationServiceOptions> } = {},
): Promise<Harness> {
  const { dir, cleanup } = await tempDir();
  const clock = { now: Date.parse("2026-01-01T00:00:00Z") };
  const now = () => clock.now;
  const writes = { count: 0 };
  const store = await FileRegistrationStore.open(`${dir}/state.json`, DEFAULT_PLAN, {
    now,
    onWrite: () => {
      writes.count++;
    },
  });
  const directory = new MemoryDirectory();
  const peers = new FakePeers();
  const kms = createTestCa("KMS root");
  const appCa = createTestCa("app CA", kms);
  const service = new RegistrationService({
    ...registrationSettings(CONFIG),
    attestation: new CaAttestation({ caPem: kms.pem }),
    authorizer: opts.authorizer,
    store,
    directory,
    peers,
    version: "0.1.0-test",
    now,
    ...opts.service,
  });
  return {
    service,
    writes,
    store,
    directory,
    peers,
    kms,
    appCa,
    clock,
    cert: (instanceHex, app = APP) =>
      issueRaTlsCert(appCa, { appInfo: appInfoSpec(app, instanceHex) }),
    peer: (cert) => ({ der: cert.der, chain: [appCa.der] }),
    cleanup: async () => {
      await store.close();
      await cleanup();
    },
  };
}
