import * as pulumi from "@pulumi/pulumi";

/**
 * The secrets of `gateway:config` a consumer may pass as Inputs instead of inside the plain
 * config (from another resource, or a secret of its own stack's config): each arg of
 * `GatewayRegion` and the config key it fills.
 */
export const SECRET_ARGS = {
  cloudflareApiToken: ["core", "certbot", "cf_api_token"],
  adminAuthToken: ["core", "admin", "auth_token"],
  rfc2136TsigSecret: ["core", "certbot", "rfc2136", "tsig_secret"],
} as const;

export type SecretArg = keyof typeof SECRET_ARGS;
export type SecretInputs = Partial<Record<SecretArg, pulumi.Input<string> | undefined>>;

/** Pulumi's form of a secret it has not decrypted: the config schema checks it is present, no more. */
const NOT_YET_KNOWN = { secure: "an Input of GatewayRegion" };

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** The args given, by name. */
export function givenSecrets(args: SecretInputs): SecretArg[] {
  return (Object.keys(SECRET_ARGS) as SecretArg[]).filter((k) => args[k] !== undefined);
}

/**
 * The raw config with each given secret at its key: `values[arg]` when known, else a stand-in
 * the schema takes as present. So the config is validated whole before any resource exists
 * (a "required when" rule sees the secret), and again with the values once they are known.
 * A key set both in the config and as an arg is refused: one of them would be ignored.
 */
export function withSecrets(
  raw: unknown,
  given: readonly SecretArg[],
  values: Partial<Record<SecretArg, string>>,
  source: string,
): unknown {
  if (given.length === 0) return raw;
  // Copies the objects on the way down only: the rest is shared, and never written.
  const root: Record<string, unknown> = isObject(raw) ? { ...raw } : {};
  next: for (const arg of given) {
    const path = SECRET_ARGS[arg];
    let at = root;
    for (const key of path.slice(0, -1)) {
      const below = at[key] ?? {};
      // A section of the wrong shape: the schema names it, with nothing added here.
      if (!isObject(below)) continue next;
      at[key] = { ...below };
      at = at[key] as Record<string, unknown>;
    }
    const leaf = path[path.length - 1] as string;
    if (at[leaf] !== undefined) {
      throw new pulumi.RunError(
        `${source}: ${path.join(".")} is set both in the config and as ${arg}; give it once`,
      );
    }
    at[leaf] = values[arg] ?? NOT_YET_KNOWN;
  }
  return root;
}
