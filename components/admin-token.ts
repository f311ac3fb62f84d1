import * as pulumi from "@pulumi/pulumi";

export interface AdminTokenInputs {
  rotation: string;
}

export interface AdminTokenOutputs extends AdminTokenInputs {
  token: string;
}

/**
 * The dynamic provider of `AdminToken`: 32 random bytes, base64url. Self-contained for the same
 * reason as `wireGuardKeyProvider`: Pulumi serializes it and runs it in a separate host.
 */
export function adminTokenProvider(): pulumi.dynamic.ResourceProvider<
  AdminTokenInputs,
  AdminTokenOutputs
> {
  return {
    async create(inputs) {
      const { randomBytes } = process.getBuiltinModule("node:crypto");
      return {
        // The id is in plain state: it must not be the token, nor tell anything about it.
        id: `admin-token-${randomBytes(6).toString("hex")}`,
        outs: { rotation: inputs.rotation, token: randomBytes(32).toString("base64url") },
      };
    },
    async diff(_id, olds, news) {
      const rotated = olds.rotation !== news.rotation;
      return { changes: rotated, replaces: rotated ? ["rotation"] : [] };
    },
  };
}

export interface AdminTokenArgs {
  /** Any value; changing it replaces the token (rotation). @default "" */
  rotation?: pulumi.Input<string> | undefined;
}

/**
 * The admin API token of a region, a secret: every host's config carries it, and
 * `gateway admin <call>` on a host reads it from there.
 */
export class AdminToken extends pulumi.dynamic.Resource {
  declare readonly token: pulumi.Output<string>;
  declare readonly rotation: pulumi.Output<string>;

  constructor(name: string, args: AdminTokenArgs = {}, opts: pulumi.CustomResourceOptions = {}) {
    super(
      adminTokenProvider(),
      name,
      { rotation: args.rotation ?? "", token: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["token"] }),
      "gateway",
      "AdminToken",
    );
    this.token = pulumi.secret(this.token);
  }
}
