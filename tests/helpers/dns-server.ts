/**
 * A tiny authoritative DNS server on 127.0.0.1 (UDP, random port) for tests: TXT records from a
 * mutable table, NXDOMAIN for every other name (no SOA, so resolvers do not cache the miss),
 * NODATA for other types at a known name. It counts queries and can be told to stay silent
 * (timeouts) or to answer SERVFAIL.
 */
import { createSocket } from "node:dgram";
import { once } from "node:events";
import dnsPacket from "dns-packet";

export type DnsServerMode = "answer" | "silent" | "servfail";

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, for `servers: [...]`. */
  readonly address: string;
  readonly port: number;
  /** Sets the TXT records of `name`; each record is a string or a list of chunks. */
  setTxt(name: string, records: ReadonlyArray<string | readonly string[]>): void;
  deleteTxt(name: string): void;
  setMode(mode: DnsServerMode): void;
  /** TTL in answers; 0 (the default) keeps resolver-side caches out of the way. */
  setTtl(seconds: number): void;
  /** Queries received (answered or not), in total or for one name. */
  queries(name?: string): number;
  close(): Promise<void>;
}

const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

function key(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const records = new Map<string, string[][]>();
  const counts = new Map<string, number>();
  let total = 0;
  let mode: DnsServerMode = "answer";
  let ttl = 0;

  const socket = createSocket("udp4");
  socket.on("message", (message, peer) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    const name = key(question.name);
    total += 1;
    counts.set(name, (counts.get(name) ?? 0) + 1);
    if (mode === "silent") return;

    const txt = records.get(name);
    let rcode = 0;
    const answers: dnsPacket.Answer[] = [];
    if (mode === "servfail") rcode = RCODE_SERVFAIL;
    else if (txt === undefined) rcode = RCODE_NXDOMAIN;
    else if (question.type === "TXT") {
      for (const data of txt) answers.push({ type: "TXT", name: question.name, ttl, data });
    }
    const response = dnsPacket.encode({
      type: "response",
      id: query.id ?? 0,
      flags:
        dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | rcode,
      questions: [question],
      answers,
    });
    socket.send(response, peer.port, peer.address);
  });
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  const { port } = socket.address();

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
    setMode(next) {
      mode = next;
    },
    setTtl(seconds) {
      ttl = seconds;
    },
    queries(name) {
      return name === undefined ? total : (counts.get(key(name)) ?? 0);
    },
    async close() {
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
