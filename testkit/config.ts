import { generateWgKeyPair } from "../gateway-runtime/keys/wireguard.js";

const keys = generateWgKeyPair();

/** A small valid config: every feature that needs outside services is off. */
export function minimalConfig(): Record<string, unknown> {
  return {
    core: {
      rpc_domain: "gateway.test.example",
      auth: { enabled: false },
      // Off: it needs credentials to start; the tests of the admin API set their own.
      admin: { enabled: false },
      certbot: { enabled: false },
      wg: { public_key: keys.publicKey, private_key: keys.privateKey, endpoint: "192.0.2.1:51820" },
      proxy: { base_domain: "app.test.example" },
    },
  };
}

/** `minimalConfig` as a stack writes it: without the keys the Pulumi program generates per host. */
export function stackConfig(): Record<string, unknown> {
  const config = minimalConfig();
  const core = config.core as { wg: Record<string, unknown> };
  core.wg = {};
  return config;
}

/** A copy of `base` with the dotted `path` set to `value` (undefined deletes the key). */
export function withKey(
  base: Record<string, unknown>,
  path: string,
  value: unknown,
): Record<string, unknown> {
  const copy = structuredClone(base);
  const keys = path.split(".");
  let node: Record<string, unknown> = copy;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1] as string;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}
