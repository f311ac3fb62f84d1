import { fileURLToPath } from "node:url";
import * as pulumi from "@pulumi/pulumi";

/**
 * The compiled `gateway-runtime/keys/wireguard.js` next to this module (`npm run build` puts both in
 * `bin/`). The provider loads `generateWgKeyPair` from it when it runs, so the runtime and the
 * program share one key generator.
 */
export const KEYS_MODULE = fileURLToPath(
  new URL("../gateway-runtime/keys/wireguard.js", import.meta.url),
);

export interface WireGuardKeyInputs {
  rotation: string;
}

export interface WireGuardKeyOutputs extends WireGuardKeyInputs {
  publicKey: string;
  privateKey: string;
}

/**
 * The dynamic provider of `WireGuardKey`. Pulumi serializes provider code into the state and runs
 * it in a separate CommonJS host, so the object is self-contained: it captures only the module
 * path (a string) and loads everything at run time through `process.getBuiltinModule` (Node
 * >= 20.16) and `require`, never through an `import` binding of this module, which cannot be
 * serialized.
 */
export function wireGuardKeyProvider(
  keysModule: string = KEYS_MODULE,
): pulumi.dynamic.ResourceProvider<WireGuardKeyInputs, WireGuardKeyOutputs> {
  return {
    async create(inputs) {
      const load = process.getBuiltinModule("node:module").createRequire(keysModule);
      const keys = load(keysModule) as {
        generateWgKeyPair(): { privateKey: string; publicKey: string };
      };
      const pair = keys.generateWgKeyPair();
      return {
        id: pair.publicKey,
        outs: { rotation: inputs.rotation, publicKey: pair.publicKey, privateKey: pair.privateKey },
      };
    },
    async diff(_id, olds, news) {
      const rotated = olds.rotation !== news.rotation;
      return { changes: rotated, replaces: rotated ? ["rotation"] : [] };
    },
  };
}

export interface WireGuardKeyArgs {
  /**
   * Any value; changing it replaces the key pair (rotation). The new public key reaches the host
   * config, and the gateway restarts with it.
   * @default ""
   */
  rotation?: pulumi.Input<string>;
}

/** An X25519 key pair for one gateway's WireGuard interface; the private key is a secret. */
export class WireGuardKey extends pulumi.dynamic.Resource {
  declare readonly publicKey: pulumi.Output<string>;
  declare readonly privateKey: pulumi.Output<string>;
  declare readonly rotation: pulumi.Output<string>;

  constructor(name: string, args: WireGuardKeyArgs = {}, opts: pulumi.CustomResourceOptions = {}) {
    super(
      wireGuardKeyProvider(),
      name,
      { rotation: args.rotation ?? "", publicKey: undefined, privateKey: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["privateKey"] }),
      "gateway",
      "WireGuardKey",
    );
    // Secret in this program too, also where additionalSecretOutputs is not applied (mocks).
    this.privateKey = pulumi.secret(this.privateKey);
  }
}
