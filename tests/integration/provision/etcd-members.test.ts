/**
 * The etcd a region's hosts run, for real: three members started with exactly the flags of the
 * unit the program writes (`etcdMemberArgs`), on three loopback addresses standing in for the
 * hosts, with certificates issued by the program's own PKI (`components/x509.ts`). A client
 * with the gateways' client certificate writes and reads through every member; a client
 * without one, or with another CA's, is refused.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueCa, issueLeaf } from "../../../components/x509.js";
import { connectEtcd } from "../../../gateway-runtime/registry/etcd-client.js";
import {
  ETCD_SERVER_NAME,
  type EtcdMemberRef,
  etcdEndpoints,
  etcdMemberArgs,
} from "../../../host/etcd.js";
import { until } from "../../../testkit/poll.js";
import { stopChild } from "../../../testkit/process.js";

// A random 127.0.x.0/24 block, so the fixed etcd ports never meet another test's member.
const block = `127.0.${10 + Math.floor(Math.random() * 200)}`;
const MEMBERS: EtcdMemberRef[] = [1, 2, 3].map((i) => ({
  name: `gw${i}`,
  address: `${block}.${i}`,
}));

let dir: string;
const procs: ChildProcess[] = [];
let output = "";
const files = { ca: "", clientCert: "", clientKey: "", otherCert: "", otherKey: "" };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gw-etcd-tls-"));
  const ca = issueCa("test region etcd CA");
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  files.ca = write("ca.pem", ca.certPem);
  const client = issueLeaf(ca, { commonName: "gateway", dnsNames: [], ips: [], usage: "client" });
  files.clientCert = write("client.pem", client.certPem);
  files.clientKey = write("client-key.pem", client.keyPem);
  const other = issueCa("someone else's CA");
  const stranger = issueLeaf(other, { commonName: "x", dnsNames: [], ips: [], usage: "client" });
  files.otherCert = write("other.pem", stranger.certPem);
  files.otherKey = write("other-key.pem", stranger.keyPem);
  for (const self of MEMBERS) {
    const leaf = issueLeaf(ca, {
      commonName: self.name,
      dnsNames: [self.name, ETCD_SERVER_NAME],
      // etcd checks a peer's certificate against the address it dials from (without this SAN
      // the members never form a cluster), and on loopback every member dials from 127.0.0.1.
      // A real host dials from its own address, the one its certificate names.
      ips: [self.address, "127.0.0.1"],
      usage: "member",
    });
    const own = join(dir, self.name);
    mkdirSync(own);
    const memberFiles = {
      dataDir: join(own, "data"),
      ca: files.ca,
      cert: write(`${self.name}/member.pem`, leaf.certPem),
      key: write(`${self.name}/member-key.pem`, leaf.keyPem),
    };
    const args = etcdMemberArgs({ self, members: MEMBERS, token: "test-region" }, memberFiles);
    const proc = spawn("etcd", args, { stdio: ["ignore", "pipe", "pipe"] });
    const collect = (d: Buffer) => {
      output = (output + d.toString()).slice(-30_000);
    };
    proc.stdout?.on("data", collect);
    proc.stderr?.on("data", collect);
    procs.push(proc);
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => stopChild(p, 0)));
  rmSync(dir, { recursive: true, force: true });
});

const endpoints = etcdEndpoints(MEMBERS);

/** One request to a member's client port (etcd's JSON gateway) with the given client pair. */
function call(
  endpoint: string,
  path: string,
  body: object | undefined,
  pair: { cert?: string; key?: string } = { cert: files.clientCert, key: files.clientKey },
): Promise<Record<string, unknown>> {
  const [host, port] = endpoint.split(":");
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        path,
        method: body === undefined ? "GET" : "POST",
        ca: readFileSync(files.ca),
        ...(pair.cert && pair.key
          ? { cert: readFileSync(pair.cert), key: readFileSync(pair.key) }
          : {}),
        timeout: 2000,
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => {
          text += d.toString();
        });
        res.on("end", () => resolve(JSON.parse(text) as Record<string, unknown>));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
const b64 = (text: string) => Buffer.from(text).toString("base64");

describe("a region's etcd members with the program's flags and certificates", () => {
  it("form one cluster over peer TLS; the gateways' client certificate writes and reads", async () => {
    for (const endpoint of endpoints) {
      await until(
        `${endpoint} healthy`,
        async () => (await call(endpoint, "/health", undefined)).health === "true",
        30_000,
        { context: () => output },
      );
    }
    const [first, ...others] = endpoints as [string, ...string[]];
    await call(first, "/v3/kv/put", { key: b64("/cvm-gateway/probe"), value: b64("1") });
    for (const endpoint of others) {
      const range = await call(endpoint, "/v3/kv/range", { key: b64("/cvm-gateway/probe") });
      expect((range.kvs as { value: string }[])[0]?.value).toBe(b64("1"));
    }
    const list = await call(first, "/v3/cluster/member/list", {});
    const members = list.members as { name: string; peerURLs: string[] }[];
    expect(members.map((m) => m.name).sort()).toEqual(["gw1", "gw2", "gw3"]);
    expect(members.flatMap((m) => m.peerURLs).sort()).toEqual(
      MEMBERS.map((m) => `https://${m.address}:2380`),
    );
  }, 40_000);

  it.each([
    ["no client certificate", {}],
    ["a certificate of another CA", { cert: "otherCert", key: "otherKey" }],
  ] as const)("refuses a client with %s", async (_what, use) => {
    const pair = "cert" in use ? { cert: files[use.cert], key: files[use.key] } : {};
    await expect(call(endpoints[0] as string, "/health", undefined, pair)).rejects.toThrow();
  });

  it("the runtime's etcd client reaches the members by address over TLS, checking the name they carry", async () => {
    const client = await connectEtcd({
      endpoints,
      serverName: ETCD_SERVER_NAME,
      caFile: files.ca,
      certFile: files.clientCert,
      keyFile: files.clientKey,
      timeoutMs: 2000,
    });
    try {
      expect(await client.get("/cvm-gateway/probe").string()).toBe("1");
    } finally {
      client.close();
    }
  });

  it("over TLS to addresses without server_name, the client refuses to start and names the key", async () => {
    await expect(
      connectEtcd({ endpoints, caFile: files.ca, timeoutMs: 2000 }),
    ).rejects.toMatchObject({
      code: "E_CLUSTER_CONFIG",
      message: expect.stringContaining("core.cluster.etcd.server_name"),
    });
  });

  it("a name the members' certificates do not carry is refused", async () => {
    const client = await connectEtcd({
      endpoints,
      serverName: "someone-else.internal",
      caFile: files.ca,
      certFile: files.clientCert,
      keyFile: files.clientKey,
      timeoutMs: 1000,
    });
    try {
      await expect(client.get("/cvm-gateway/probe").string()).rejects.toThrow();
    } finally {
      client.close();
    }
  });
});
