import { createHash } from "node:crypto";
import type * as pulumi from "@pulumi/pulumi";
import { wgPublicKey } from "../../gateway-runtime/keys/wireguard.js";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

type MockResult = { id: string; state: Record<string, unknown> };

/** Deterministic fakes for what real runs generate: WireGuard keys, the ACME account, zone ids. */
export function planMocks(stack: string): pulumi.runtime.Mocks {
  return {
    async newResource(args): Promise<MockResult> {
      const seed = sha(`${stack}:${args.name}`);
      if (args.type === "pulumi-nodejs:dynamic/gateway:WireGuardKey") {
        const privateKey = Buffer.from(sha(`${seed}:${args.inputs.rotation}`), "hex").toString(
          "base64",
        );
        const publicKey = wgPublicKey(privateKey) as string;
        return { id: publicKey, state: { ...args.inputs, privateKey, publicKey } };
      }
      if (args.type === "pulumi-nodejs:dynamic/gateway:AcmeAccount") {
        const origin = new URL(String(args.inputs.directoryUrl)).origin;
        const accountUrl = `${origin}/acme/acct/${Number.parseInt(seed.slice(0, 8), 16)}`;
        const accountKey = `-----BEGIN PRIVATE KEY-----\nstand-in ${seed.slice(0, 16)}\n-----END PRIVATE KEY-----\n`;
        return { id: accountUrl, state: { ...args.inputs, accountUrl, accountKey } };
      }
      return { id: `${args.name}-id`, state: args.inputs };
    },
    call(args) {
      if (args.token === "cloudflare:index/getZone:getZone") {
        const filter = args.inputs.filter as { name?: string } | undefined;
        return { id: `zone-id-of-${filter?.name}`, name: filter?.name };
      }
      throw new Error(`no mock for the invoke ${args.token}`);
    },
  };
}
