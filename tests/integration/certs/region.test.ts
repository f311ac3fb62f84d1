/**
 * One certificate per region: managers of several hosts (own work directories, own etcd
 * clients, as separate hosts) on one real etcd member, against the real pebble and BIND of the
 * cert lab. One host orders, the others take its pair from etcd; a host started later takes it
 * without ordering; a bad pair put into etcd is refused; a holder that died frees the lock.
 */
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdLock } from "../../../gateway-runtime/certs/cluster/etcd-lock.js";
import {
  type CertificateEvent,
  type CertificateManager,
  openCertificateManager,
} from "../../../gateway-runtime/certs/index.js";
import { decodePair, encodePair } from "../../../gateway-runtime/certs/region.js";
import { splitPemChain } from "../../../gateway-runtime/certs/verify.js";
import { createLogger, type Logger, silentLogger } from "../../../gateway-runtime/log/index.js";
import { connectEtcd } from "../../../gateway-runtime/registry/etcd-client.js";
import { createCa, issueLeaf } from "../../../testkit/certs.js";
import { type EtcdCluster, startEtcdCluster } from "../../../testkit/etcd.js";
import { until } from "../../../testkit/poll.js";
import { startTcpRelay } from "../../helpers/tcp-relay.js";
import { BASE, type CertLab, startCertLab } from "./harness.js";

let lab: CertLab;
let etcd: EtcdCluster;
let admin: Etcd3;
const managers: CertificateManager[] = [];
const endpoints = () => etcd.endpoints.map((u) => u.replace("http://", ""));

beforeAll(async () => {
  [lab, etcd] = await Promise.all([startCertLab(), startEtcdCluster(1)]);
  admin = await connectEtcd({ endpoints: endpoints(), timeoutMs: 2000 });
}, 60_000);
afterAll(async () => {
  await Promise.all(managers.map((m) => m.stop()));
  admin?.close();
  await Promise.all([lab?.close(), etcd?.close()]);
});

/** Certificates pebble issued so far. */
const issuedByPebble = () => lab.pebble.log().split("Issued certificate serial").length - 1;
const liveSerial = (wd: string) =>
  new X509Certificate(readFileSync(join(wd, "live", "cert.pem"))).serialNumber;
const pairKey = (prefix: string) => `${prefix}/certs/${BASE}/pair`;

interface Host {
  readonly wd: string;
  readonly manager: CertificateManager;
  readonly events: CertificateEvent[];
}

/** A host of the region under `prefix`, started. */
async function host(
  prefix: string,
  name: string,
  opts: { log?: Logger; endpoints?: string[] } = {},
): Promise<Host> {
  const wd = lab.workdir();
  const config = lab.config(wd, {
    "core.cluster": {
      enabled: true,
      prefix,
      node_name: name,
      etcd: { endpoints: opts.endpoints ?? endpoints(), timeout: "1s" },
    },
  });
  const manager = await openCertificateManager({
    config,
    log: opts.log ?? silentLogger(),
    backoff: { initialMs: 60_000, maxMs: 600_000 },
    lockRetryMs: 500,
  });
  managers.push(manager);
  const events: CertificateEvent[] = [];
  manager.onCertificate((e) => {
    events.push(e);
  });
  await manager.start();
  return { wd, manager, events };
}

/** Resolves with the serial once `h` has a certificate, bounded. */
async function ready(h: Host): Promise<string> {
  const info = await Promise.race([
    h.manager.whenReady(),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${h.wd}: no certificate in 15 s`)), 15_000).unref(),
    ),
  ]);
  return info.serial;
}

describe("a region of three hosts", () => {
  const prefix = "/region1";
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  let hosts: Host[] = [];
  let serial: string;

  it("orders once: one host renews, the others take its pair and fire onCertificate", async () => {
    const before = issuedByPebble();
    hosts = await Promise.all([
      host(prefix, "a", { log: createLogger("info", sink) }),
      host(prefix, "b"),
      host(prefix, "c"),
    ]);
    const serials = await Promise.all(hosts.map(ready));
    serial = serials[0] as string;
    expect(new Set(serials).size).toBe(1);
    for (const h of hosts) {
      expect(liveSerial(h.wd).toUpperCase()).toBe(serial);
      await until("the host's listeners to hear of it", () => h.events.length === 1, 5000);
      expect(h.events[0]?.info.serial).toBe(serial);
    }
    expect(issuedByPebble() - before).toBe(1);
    const ledger = JSON.parse((await admin.get(`${prefix}/certs/${BASE}/ledger`).string()) ?? "");
    expect(ledger.issued).toHaveLength(1);
    const shared = decodePair((await admin.get(pairKey(prefix)).string()) ?? "");
    expect(new X509Certificate(shared.certPem).serialNumber.toUpperCase()).toBe(serial);
  });

  it("a host started later takes the region's pair without ordering", async () => {
    const before = issuedByPebble();
    const late = await host(prefix, "d");
    hosts.push(late);
    expect(await ready(late)).toBe(serial);
    expect((await late.manager.checkNow()).action).toBe("none");
    expect(issuedByPebble()).toBe(before);
    expect(late.events.map((e) => e.info.serial)).toEqual([serial]);
  });

  it("refuses a mismatched or forged pair put into etcd, keeps its own, then republishes it", async () => {
    const [a] = hosts as [Host];
    const live = {
      certPem: readFileSync(join(a.wd, "live", "cert.pem"), "utf8"),
      keyPem: readFileSync(join(a.wd, "live", "key.pem"), "utf8"),
    };
    const otherKey = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    const ca = createCa();
    // A leaf for the names by another CA, sent with pebble's intermediate as if it signed it,
    // valid longer than the real one (so only the checks stop it).
    const forged = issueLeaf(ca, { days: 3650 });
    ca.cleanup();
    const intermediate = splitPemChain(live.certPem).slice(1).join("\n");
    const bad = [
      { certPem: live.certPem, keyPem: otherKey },
      { certPem: `${forged.certPem}${intermediate}\n`, keyPem: forged.keyPem },
      { certPem: forged.certPem, keyPem: forged.keyPem },
    ];
    for (const pair of bad) await admin.put(pairKey(prefix)).value(encodePair(pair));
    // Each arrives by the watch; a background check may read (and refuse) one again.
    const reasons = () =>
      new Set(
        lines
          .filter((l) => l.includes("refused the region's certificate"))
          .map((l) => String(JSON.parse(l).err)),
      );
    await until("host a to refuse the three pairs", () => reasons().size === 3, 5000, {
      context: () => lines.join("\n"),
    });
    expect([...reasons()].sort()).toEqual([
      "certificate 0 of the chain is not signed by 1",
      "the chain has no issuer certificate",
      "the private key does not match the certificate",
    ]);
    for (const h of hosts) {
      expect(liveSerial(h.wd).toUpperCase()).toBe(serial);
      expect(h.events).toHaveLength(1);
    }
    expect((await a.manager.checkNow()).action).toBe("none");
    const shared = decodePair((await admin.get(pairKey(prefix)).string()) ?? "");
    expect(shared.certPem).toBe(live.certPem);
  });

  it("a forced renewal on one host reaches every host's listeners", async () => {
    const before = issuedByPebble();
    const [, b] = hosts as [Host, Host];
    expect((await b.manager.checkNow({ force: true })).action).toBe("renewed");
    const next = b.manager.status().serial as string;
    expect(next).not.toBe(serial);
    for (const h of hosts) {
      await until(
        "the new pair to reach the host",
        () => h.events.at(-1)?.info.serial === next,
        5000,
      );
      expect(liveSerial(h.wd).toUpperCase()).toBe(next);
    }
    expect(issuedByPebble() - before).toBe(1);
  });
});

describe("a renewal lock whose holder died", () => {
  it("blocks the region until its lease runs out, then another host renews", async () => {
    const prefix = "/region2";
    const url = new URL(etcd.endpoints[0] as string);
    const relay = await startTcpRelay({ host: url.hostname, port: Number(url.port) });
    const dead = await connectEtcd({ endpoints: [relay.address], timeoutMs: 1000 });
    const held = await new EtcdLock({
      client: dead,
      key: `${prefix}/locks/certbot`,
      node: "dead",
      ttlSeconds: 2,
      log: silentLogger(),
    }).tryAcquire();
    expect(held).toBeDefined();
    await relay.cut(); // the holder's host is gone: no release, no keepalives
    const started = Date.now();
    const survivor = await host(prefix, "survivor");
    expect((await survivor.manager.checkNow()).action).toBe("locked");
    await ready(survivor);
    expect(Date.now() - started).toBeGreaterThan(1000);
    expect(survivor.manager.status().lastRenewal?.ok).toBe(true);
    dead.close();
  });
});
