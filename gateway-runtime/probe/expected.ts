/**
 * The certificate a host should serve, read where the region keeps it: in a region
 * (`core.cluster` with certbot) the pair in etcd that every host follows (certs/region.ts),
 * otherwise the chain file the gateway serves from (`core.proxy.cert_chain`, which the
 * certificate manager swaps in on renewal). The probe's certificate gate compares serials.
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { decodePair } from "../certs/region.js";
import { splitPemChain } from "../certs/verify.js";
import type { GatewayConfig } from "../config/index.js";

function leafSerial(pem: string, where: string): string {
  const leaf = splitPemChain(pem)[0];
  if (leaf === undefined) throw new Error(`${where} holds no certificate`);
  return new X509Certificate(leaf).serialNumber.toUpperCase();
}

export async function expectedSerial(
  config: GatewayConfig,
): Promise<{ serial: string; source: string }> {
  const { cluster, certbot, proxy } = config.core;
  if (cluster.enabled && certbot.enabled) {
    // Loaded only in a region, as registration does, so a host alone never starts gRPC.
    const { connectEtcd, etcdClientOptions } = await import("../registry/etcd-client.js");
    const client = await connectEtcd(etcdClientOptions(cluster.etcd));
    const key = `${cluster.prefix.replace(/\/+$/, "")}/certs/${proxy.base_domain}/pair`;
    try {
      const text = await client.get(key).string();
      if (text === null) throw new Error(`etcd holds no certificate at ${key}`);
      return {
        serial: leafSerial(decodePair(text).certPem, `etcd key ${key}`),
        source: `etcd ${key}`,
      };
    } finally {
      client.close();
    }
  }
  const file = proxy.cert_chain;
  return { serial: leafSerial(await readFile(file, "utf8"), file), source: file };
}
