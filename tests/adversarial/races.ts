/**
 * Registrations that race, for the RPC part. Another gateway host of the cluster gateway's
 * region, in the test process: the registration store the bundle opens (registration/store.ts),
 * from the gateway's own config, so it shares the etcd prefix and the address plan; what it
 * registers reaches the gateway only through etcd. And on either store, many instances asking
 * the gateway at once for one new key.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { parseCidr } from "../../gateway-runtime/config/net.js";
import { loadConfigFile } from "../../gateway-runtime/config/load.js";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import { silentLogger } from "../../gateway-runtime/log/index.js";
import { openStore } from "../../gateway-runtime/registration/store.js";
import type { RegistrationStore } from "../../gateway-runtime/registry/store.js";
import { until } from "../../testkit/poll.js";
import { newId, type TestGateway } from "./gateway.js";
import { type Answer, rpcRequest } from "../../testkit/requests.js";

export async function otherHost(gw: TestGateway): Promise<RegistrationStore> {
  if (gw.store !== "etcd") throw new Error("another host needs the cluster gateway");
  const config = loadConfigFile(gw.configFile);
  const gateway = parseCidr(config.core.wg.ip);
  const range = parseCidr(config.core.wg.client_ip_range);
  if (!gateway || !range) throw new Error("the gateway's config has no CIDRs");
  const reserved = config.core.wg.reserved_net.flatMap((r) => parseCidr(r) ?? []);
  return openStore(config, { range, gatewayIp: gateway.address, reserved }, silentLogger());
}

export interface Round {
  /** "ok", or the error code of the other host's registration. */
  readonly held: string;
  /** The gateway's answers to a new instance with the holder's key, and to the holder's id. */
  readonly steal: Answer;
  readonly claim: Answer;
  /** Who holds the key in etcd (instance ids) and the app of each record under the id. */
  readonly keyHolders: string[];
  readonly recordApps: string[];
  readonly holder: { instanceId: string; appId: string; publicKey: string };
  readonly outcome: string;
}

/**
 * One round: `other` registers a new holder, and the gateway is asked for a new instance of
 * another app with the holder's key, and for the holder's instance id under another app.
 * After: the holder is in etcd before the gateway hears of either request (its view may not
 * have the holder yet: etcd's transaction refuses then). During: the gateway's requests go
 * first and the holder's `delayMs` later, so either may win.
 */
export async function hostRound(
  gw: TestGateway,
  other: RegistrationStore,
  order: "after" | "during",
  delayMs: number,
): Promise<Round> {
  const holder = { instanceId: newId(), appId: newId(), publicKey: generateWgKeyPair().publicKey };
  const register = () =>
    other.register(holder).then(
      () => "ok",
      (error: { code?: string }) => error.code ?? String(error),
    );
  let held = order === "after" ? await register() : undefined;
  const requests = Promise.all([
    rpcRequest(gw.rpcPort, {
      cert: gw.clientCert(newId(), newId()),
      body: JSON.stringify({ client_public_key: holder.publicKey }),
    }),
    rpcRequest(gw.rpcPort, {
      cert: gw.clientCert(newId(), holder.instanceId),
      body: JSON.stringify({ client_public_key: generateWgKeyPair().publicKey }),
    }),
  ]);
  if (held === undefined) {
    await sleep(delayMs);
    held = await register();
  }
  const [steal, claim] = await requests;
  const stored = (await gw.stored()).split("\n");
  const values = (key: string) =>
    stored.filter((l) => l.includes(key)).map((l) => l.split(" ").slice(2).join(" "));
  const key = Buffer.from(holder.publicKey, "base64").toString("base64url");
  return {
    held,
    steal,
    claim,
    keyHolders: values(`/keys/${key} `),
    recordApps: values(`/instances/${holder.instanceId} `).map(
      (json) => (JSON.parse(json) as { appId: string }).appId,
    ),
    holder,
    outcome:
      `${order} ${delayMs} ms: holder ${held}, steal ${steal.status} ${steal.text.slice(0, 200)}, ` +
      `claim ${claim.status} ${claim.text.slice(0, 200)}`,
  };
}

/**
 * Waits until the gateway's WireGuard peers are exactly the keys of the records in etcd: the
 * other host's instances reach it through the watch, after their registration.
 */
export async function untilPeersAreEtcdKeys(gw: TestGateway): Promise<void> {
  const keys = async () =>
    (await gw.stored())
      .split("\n")
      .filter((l) => l.includes("/instances/"))
      .map((l) => (JSON.parse(l.split(" ").slice(2).join(" ")) as { publicKey: string }).publicKey)
      .sort()
      .join("\n");
  let seen = "";
  await until(
    "the gateway's peers to be the keys in etcd",
    async () => {
      const [peers, held] = [await gw.wgPeers(), await keys()];
      seen = `${peers}\n--- etcd\n${held}`;
      return peers === held;
    },
    10_000,
    { context: () => seen },
  );
}

/**
 * `count` new instances (half of the registered app, half of others) ask at once for one new
 * key. Returns the answers and the instance ids, in the same order.
 */
export async function sameKeyRace(
  gw: TestGateway,
  count: number,
): Promise<{ key: string; ids: string[]; answers: Answer[] }> {
  const key = generateWgKeyPair().publicKey;
  const ids = Array.from({ length: count }, () => newId());
  const answers = await Promise.all(
    ids.map((id, k) =>
      rpcRequest(gw.rpcPort, {
        cert: gw.clientCert(k % 2 === 0 ? gw.appId : newId(), id),
        body: JSON.stringify({ client_public_key: key }),
      }),
    ),
  );
  return { key, ids, answers };
}
