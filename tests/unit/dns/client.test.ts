/**
 * The TXT client against scripted UDP servers on 127.0.0.1: each test says which datagrams
 * answer a query, so forged IDs, wrong questions, CNAMEs and SOAs can be served exactly.
 */
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import dnsPacket from "dns-packet";
import { afterEach, describe, expect, it } from "vitest";
import {
  createDnsClient,
  type DnsClientError,
  parseResolvConf,
} from "../../../gateway-runtime/dns/client.js";

const NAME = "_dstack-app-address.shop.example.com";
const sockets: Socket[] = [];
afterEach(async () => {
  await Promise.all(sockets.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

type Query = dnsPacket.DecodedPacket;

/** A UDP server sending, for each query, the datagrams `reply` makes of it. */
async function scripted(reply: (query: Query) => dnsPacket.Packet[]): Promise<string> {
  const socket = createSocket("udp4");
  sockets.push(socket);
  socket.on("message", (message, peer) => {
    for (const packet of reply(dnsPacket.decode(message))) {
      socket.send(dnsPacket.encode(packet), peer.port, peer.address);
    }
  });
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  return `127.0.0.1:${socket.address().port}`;
}

const response = (q: Query, over: Partial<dnsPacket.Packet> = {}): dnsPacket.Packet => ({
  type: "response",
  id: q.id ?? 0,
  flags: dnsPacket.RECURSION_AVAILABLE,
  questions: q.questions ?? [],
  ...over,
});

const client = (server: string) => createDnsClient({ servers: [server], timeoutMs: 500 });

describe("parseResolvConf", () => {
  it("takes the first three nameserver lines it can read", () => {
    const text = [
      "# generated",
      "search example.com",
      "nameserver 10.0.0.2",
      "nameserver   fe80::1%eth0",
      "nameserver not-an-ip",
      "nameserver ::1",
      "nameserver 10.0.0.9",
      "options timeout:1",
    ].join("\n");
    expect(parseResolvConf(text)).toEqual([
      { host: "10.0.0.2", port: 53 },
      { host: "fe80::1%eth0", port: 53 },
      { host: "::1", port: 53 },
    ]);
  });

  it("falls back to the local server without nameserver lines, as glibc does", () => {
    expect(parseResolvConf("search example.com\n")).toEqual([{ host: "127.0.0.1", port: 53 }]);
  });

  it("reads the file given when no servers are configured", () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-resolv-"));
    try {
      const path = join(dir, "resolv.conf");
      writeFileSync(path, "nameserver 192.0.2.53\n");
      const c = createDnsClient({ servers: [], resolvConf: path, timeoutMs: 100 });
      expect(c.servers).toEqual([{ host: "192.0.2.53", port: 53 }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses configured servers that are not IP addresses", () => {
    expect(() => createDnsClient({ servers: ["dns.example:53"], timeoutMs: 100 })).toThrow(
      expect.objectContaining({ code: "E_DNS_CONFIG" }),
    );
  });
});

describe("queryTxt", () => {
  it("returns the records and the least TTL along a CNAME chain", async () => {
    const server = await scripted((q) => [
      response(q, {
        answers: [
          { type: "CNAME", name: NAME, ttl: 30, data: "txt.provider.example" },
          { type: "TXT", name: "txt.provider.example", ttl: 120, data: ["ab", "c:1"] },
          { type: "TXT", name: "unrelated.example", ttl: 5, data: "x" },
        ],
      }),
    ]);
    expect(await client(server).queryTxt(NAME)).toEqual({ records: [["ab", "c:1"]], ttl: 30 });
  });

  it("gives NXDOMAIN the SOA's negative TTL (the least of its TTL and MINIMUM)", async () => {
    const soa = (ttl: number, minimum: number): dnsPacket.Answer => ({
      type: "SOA",
      name: "example.com",
      ttl,
      data: {
        mname: "ns.example.com",
        rname: "h.example.com",
        serial: 1,
        refresh: 1,
        retry: 1,
        expire: 1,
        minimum,
      },
    });
    for (const [ttl, minimum, expected] of [
      [300, 7, 7],
      [4, 60, 4],
    ] as const) {
      const server = await scripted((q) => [
        response(q, { flags: 3, authorities: [soa(ttl, minimum)] }),
      ]);
      expect(await client(server).queryTxt(NAME)).toEqual({ records: [], ttl: expected });
    }
  });

  it("ignores a datagram with another ID and takes the real answer after it", async () => {
    const server = await scripted((q) => [
      response(q, { id: ((q.id ?? 0) + 1) & 0xffff, answers: [txt("forged")] }),
      response(q, { answers: [txt("real")] }),
    ]);
    expect(await client(server).queryTxt(NAME)).toEqual({ records: [["real"]], ttl: 60 });
  });

  it.each([
    [
      "an answer to another question",
      (q: Query) => response(q, { questions: [{ type: "TXT", name: "other.example" }] }),
    ],
    ["SERVFAIL", (q: Query) => response(q, { flags: 2 })],
  ])("fails with E_DNS_FAILED on %s", async (_what, reply) => {
    const server = await scripted((q) => [reply(q)]);
    const error = await client(server)
      .queryTxt(NAME)
      .catch((e: DnsClientError) => e);
    expect(error).toMatchObject({ code: "E_DNS_FAILED" });
  });

  it("refuses a name DNS cannot carry without sending anything", async () => {
    let queries = 0;
    const server = await scripted(() => {
      queries += 1;
      return [];
    });
    const error = await client(server)
      .queryTxt(`${"a".repeat(64)}.example`)
      .catch((e: DnsClientError) => e);
    expect(error).toMatchObject({ code: "E_DNS_BAD_NAME" });
    expect(queries).toBe(0);
  });
});

function txt(value: string): dnsPacket.Answer {
  return { type: "TXT", name: NAME, ttl: 60, data: value };
}
