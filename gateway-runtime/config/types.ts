import type { z } from "zod";
import type { gatewayConfigSchema, operatorConfigSchema } from "./schema.js";
import type { Secret } from "./secret.js";

/**
 * The parsed config's types. zod infers every "required when" key as optional; `checkConfig`
 * (checks.ts) is what makes them present, so these types restate its rules as discriminated
 * unions: once `config.core.attestation.mode === "tdx"`, `pccs_url` is a string, with no cast
 * or second check in the code that reads it. `parse` (load.ts) is the one place that vouches
 * for the narrowing, and tests/unit/config/contract.test.ts fails a config breaking each rule.
 */
type Raw = z.output<typeof gatewayConfigSchema>;
type RawCore = Raw["core"];

type Auth<A extends RawCore["auth"]> = Omit<A, "enabled" | "url"> &
  ({ enabled: false; url?: string | undefined } | { enabled: true; url: string });

type Attestation<A extends RawCore["attestation"]> = Omit<A, "mode" | "pccs_url"> &
  ({ mode: "ca"; pccs_url?: string | undefined } | { mode: "tdx"; pccs_url: string });

type Rfc2136<R extends RawCore["certbot"]["rfc2136"]> = Omit<
  R,
  "server" | "tsig_key_name" | "tsig_secret"
> & { server: string; tsig_key_name: string; tsig_secret: Secret };

type Provider<C extends RawCore["certbot"]> =
  | { dns_provider: "cloudflare"; cf_api_token: Secret; cf_zone_id: string; rfc2136: C["rfc2136"] }
  | {
      dns_provider: "rfc2136";
      rfc2136: Rfc2136<C["rfc2136"]>;
      cf_api_token?: Secret | undefined;
      cf_zone_id?: string | undefined;
    };

/** On a host the account is both keys or neither; in a stack it is never set. */
type Account<C> = C extends { account_url?: infer U }
  ? [NonNullable<U>] extends [never]
    ? { account_url?: undefined; account_key?: undefined }
    :
        | { account_url?: undefined; account_key?: undefined }
        | { account_url: string; account_key: Secret }
  : never;

type Certbot<C extends RawCore["certbot"]> = Omit<
  C,
  | "enabled"
  | "dns_provider"
  | "cf_api_token"
  | "cf_zone_id"
  | "rfc2136"
  | "account_url"
  | "account_key"
> &
  Account<C> &
  (
    | {
        enabled: false;
        dns_provider: C["dns_provider"];
        cf_api_token?: Secret | undefined;
        cf_zone_id?: string | undefined;
        rfc2136: C["rfc2136"];
      }
    | ({ enabled: true } & Provider<C>)
  );

type Narrowed<
  R extends {
    core: Pick<RawCore, "auth" | "attestation"> & {
      certbot: Omit<RawCore["certbot"], "account_url" | "account_key">;
    };
  },
> = Omit<R, "core"> & {
  core: Omit<R["core"], "auth" | "attestation" | "certbot"> & {
    auth: Auth<R["core"]["auth"]>;
    attestation: Attestation<R["core"]["attestation"]>;
    certbot: Certbot<R["core"]["certbot"]>;
  };
};

/** What a gateway host runs (`gateway run --config`): the runtime's whole config. */
export type GatewayConfig = Narrowed<Raw>;
/** A config file as written, before defaults. */
export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>;
/** What a stack's `gateway:config` holds, parsed: a host's config less the generated keys. */
export type OperatorConfig = Narrowed<z.output<typeof operatorConfigSchema>>;
/** A stack's `gateway:config` as written; what `GatewayRegion` takes. */
export type OperatorConfigInput = z.input<typeof operatorConfigSchema>;

/** `core.certbot` of a host, and the same once `enabled` is known to be true. */
export type CertbotConfig = GatewayConfig["core"]["certbot"];
export type EnabledCertbot = Extract<CertbotConfig, { enabled: true }>;
