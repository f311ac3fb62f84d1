/**
 * What the custom-domain tests share: a local DNS server (records with TTL 300 unless a test
 * says otherwise), resolvers that talk only to it on a clock the test moves, fresh names.
 */
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import {
  type CustomDomainError,
  type CustomDomainResolver,
  type CustomDomainResolverOptions,
  createCustomDomainResolver,
} from "../../gateway-runtime/proxy/custom-domain.js";
import { startDnsServer, type TestDnsServer } from "./dns-server.js";

export const APP = "3327603e03f5bd1f830812ca4a789277fc31f577";
export const PREFIX = "_dstack-app-address";
export const LEGACY = "_tapp-address";

export interface CustomDomainFixture {
  readonly dns: TestDnsServer;
  /** The resolvers' clock (ms); starts at 1 000 000 in each test. */
  clock: number;
  /** A resolver asking only `dns`, closed after the test; `now: Date.now` for real time. */
  make(overrides?: Partial<CustomDomainResolverOptions>): CustomDomainResolver;
  /** Closes `resolver` after the test. */
  track(resolver: CustomDomainResolver): CustomDomainResolver;
  /** A fresh custom domain, so counts never mix between tests. */
  domain(): string;
}

/** Registers the hooks of one test file and returns its fixture. */
export function useCustomDomainFixture(): CustomDomainFixture {
  let dns: TestDnsServer | undefined;
  const open: CustomDomainResolver[] = [];
  let serial = 0;
  const fixture: CustomDomainFixture = {
    get dns(): TestDnsServer {
      if (dns === undefined) throw new Error("the DNS server is not started yet");
      return dns;
    },
    clock: 0,
    make(overrides = {}) {
      return fixture.track(
        createCustomDomainResolver({
          prefix: PREFIX,
          legacyPrefix: LEGACY,
          timeoutMs: 1_000,
          ttlCapMs: 60_000,
          negativeTtlMs: 5_000,
          maxEntries: 100,
          now: () => fixture.clock,
          ...overrides,
          servers: overrides.servers ?? [fixture.dns.address],
        }),
      );
    },
    track(resolver) {
      open.push(resolver);
      return resolver;
    },
    domain() {
      serial += 1;
      return `app${serial}.customer.test`;
    },
  };
  beforeAll(async () => {
    dns = await startDnsServer();
  });
  afterAll(async () => {
    await dns?.close();
  });
  beforeEach(() => {
    fixture.clock = 1_000_000;
    fixture.dns.setMode("answer");
    fixture.dns.setTtl(300);
    fixture.dns.setNegativeSoa(undefined);
  });
  afterEach(() => {
    for (const resolver of open.splice(0)) resolver.close();
  });
  return fixture;
}

/** The error code a resolve ends with, or "no error". */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as CustomDomainError).code;
  }
  return "no error";
}
