/**
 * A tiny authoritative DNS server on 127.0.0.1 (UDP and TCP on one random port) for tests: TXT
 * and A records from mutable tables, NXDOMAIN for every other name (no SOA unless `setNegativeSoa`,
 * so resolvers do not cache the miss), NODATA for other types at a known name. It counts
 * queries and can be told to stay silent (timeouts), to answer SERVFAIL, or to answer over UDP
 * truncated (TC set, no records) so that clients must ask again over TCP.
 */
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { createServer, type Server, type Socket as TcpSocket } from "node:net";
import dnsPacket from "dns-packet";

export type DnsServerMode = "answer" | "silent" | "servfail" | "truncate";

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, for `servers: [...]`. */
  readonly address: string;
  readonly port: number;
  /** Sets the TXT records of `name`; each record is a string or a list of chunks. */
  setTxt(name: string, records: ReadonlyArray<string | readonly string[]>): void;
  deleteTxt(name: string): void;
  /** Sets the A records of `name` (the probe resolves a region's names with them). */
  setA(name: string, addresses: readonly string[]): void;
  setMode(mode: DnsServerMode): void;
  /** TTL in answers; 0 (the default) keeps resolver-side caches out of the way. */
  setTtl(seconds: number): void;
  /** Negative answers carry an SOA with this TTL and MINIMUM; undefined (the default): none. */
  setNegativeSoa(seconds: number | undefined): void;
  /** Queries received (answered or not, UDP and TCP), in total or for one name. */
  queries(name?: string): number;
  /** Queries received over TCP, in total or for one name. */
  tcpQueries(name?: string): number;
  close(): Promise<void>;
}

const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

function key(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

/** A UDP socket and a TCP server on the same free port (a few tries: the two may collide). */
async function bindBoth(): Promise<{ udp: Socket; tcp: Server; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const udp = createSocket("udp4");
    udp.bind(0, "127.0.0.1");
    await once(udp, "listening");
    const { port } = udp.address();
    const tcp = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once("error", () => resolve(false));
      tcp.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (ok) return { udp, tcp, port };
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (attempt === 20) throw new Error("no port free for both UDP and TCP");
  }
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const records = new Map<string, string[][]>();
  const aRecords = new Map<string, string[]>();
  const counts = new Map<string, number>();
  const tcpCounts = new Map<string, number>();
  let mode: DnsServerMode = "answer";
  let ttl = 0;
  let negativeSoa: number | undefined;

  const totals = { all: 0, tcp: 0 };
  const connections = new Set<TcpSocket>();

  /** The answer to `message`, or undefined for none (silent, or not a query). */
  function answer(message: Buffer, overTcp: boolean): Buffer | undefined {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return undefined;
    }
    const question = query.questions?.[0];
    if (question === undefined) return undefined;
    const name = key(question.name);
    counts.set(name, (counts.get(name) ?? 0) + 1);
    totals.all += 1;
    if (overTcp) {
      tcpCounts.set(name, (tcpCounts.get(name) ?? 0) + 1);
      totals.tcp += 1;
    }
    if (mode === "silent") return undefined;

    const txt = records.get(name) ?? (aRecords.has(name) ? [] : undefined);
    let rcode = 0;
    let flags = dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED);
    const answers: dnsPacket.Answer[] = [];
    const authorities: dnsPacket.Answer[] = [];
    if (mode === "servfail") rcode = RCODE_SERVFAIL;
    else if (mode === "truncate" && !overTcp) flags |= dnsPacket.TRUNCATED_RESPONSE;
    else if (txt === undefined) rcode = RCODE_NXDOMAIN;
    else if (question.type === "TXT") {
      for (const data of txt) answers.push({ type: "TXT", name: question.name, ttl, data });
    } else if (question.type === "A") {
      for (const data of aRecords.get(name) ?? []) {
        answers.push({ type: "A", name: question.name, ttl, data });
      }
    }
    if (rcode === RCODE_NXDOMAIN || (rcode === 0 && answers.length === 0 && txt !== undefined)) {
      if (negativeSoa !== undefined) authorities.push(soa(negativeSoa));
    }
    return dnsPacket.encode({
      type: "response",
      id: query.id ?? 0,
      flags: flags | rcode,
      questions: [question],
      answers,
      authorities,
    });
  }

  const { udp, tcp, port } = await bindBoth();
  udp.on("message", (message, peer) => {
    const response = answer(message, false);
    if (response !== undefined) udp.send(response, peer.port, peer.address);
  });
  tcp.on("connection", (socket) => {
    let received = Buffer.alloc(0);
    connections.add(socket);
    socket.on("close", () => connections.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
        const message = received.subarray(2, 2 + received.readUInt16BE(0));
        received = received.subarray(2 + message.length);
        const response = answer(message, true);
        if (response === undefined) continue;
        const length = Buffer.alloc(2);
        length.writeUInt16BE(response.length);
        socket.write(Buffer.concat([length, response]));
      }
    });
  });

  return {
    address: `127.0.0.1:${port}`,
    port,
    setTxt(name, txt) {
      records.set(
        key(name),
        txt.map((r) => (typeof r === "string" ? [r] : [...r])),
      );
    },
    deleteTxt(name) {
      records.delete(key(name));
    },
    setA(name, addresses) {
      aRecords.set(key(name), [...addresses]);
    },
    setMode(next) {
      mode = next;
    },
    setTtl(seconds) {
      ttl = seconds;
    },
    setNegativeSoa(seconds) {
      negativeSoa = seconds;
    },
    queries(name) {
      return name === undefined ? totals.all : (counts.get(key(name)) ?? 0);
    },
    tcpQueries(name) {
      return name === undefined ? totals.tcp : (tcpCounts.get(key(name)) ?? 0);
    },
    async close() {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      for (const socket of connections) socket.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

/** An SOA whose negative TTL (RFC 2308 §5: the least of its TTL and MINIMUM) is `seconds`. */
function soa(seconds: number): dnsPacket.Answer {
  return {
    type: "SOA",
    name: "test",
    ttl: seconds,
    data: {
      mname: "ns.test",
      rname: "hostmaster.test",
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: seconds,
    },
  };
}
