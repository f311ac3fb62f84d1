/**
 * A stub resolver for TXT records that keeps their TTLs, which `node:dns` drops for TXT. It asks
 * the configured servers, else the nameservers of /etc/resolv.conf, one after the other until
 * one answers: over UDP, again over TCP when the answer is truncated (RFC 7766 §5). It asks for
 * recursion and keeps no cache: the caller caches by the TTLs it returns.
 */
import { Buffer } from "node:buffer";
import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import dnsPacket from "dns-packet";
import { checkName, decodeMessage, RCODE, rcodeOf } from "./packet.js";
import {
  type Endpoint,
  exchangeTcp,
  exchangeUdp,
  formatEndpoint,
  parseIpEndpoint,
} from "./transport.js";

export type DnsClientErrorCode = "E_DNS_CONFIG" | "E_DNS_BAD_NAME" | "E_DNS_FAILED";

export class DnsClientError extends Error {
  constructor(
    readonly code: DnsClientErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DnsClientError";
  }
}

export interface TxtAnswer {
  /** Each TXT record as its character-strings; empty for NXDOMAIN and NODATA. */
  readonly records: string[][];
  /**
   * Seconds the answer holds: the least TTL of the records it rests on (CNAMEs included), or
   * for no record the negative TTL of the SOA sent with it (RFC 2308 §5); undefined when a
   * negative answer came without an SOA.
   */
  readonly ttl: number | undefined;
}

export interface DnsClientOptions {
  /** `ip[:port]` servers; empty or absent: the nameservers of `resolvConf`. */
  readonly servers?: readonly string[];
  /** @default "/etc/resolv.conf" */
  readonly resolvConf?: string;
  /** Bound on one query; each server gets an equal share of it. */
  readonly timeoutMs: number;
}

export interface DnsClient {
  readonly servers: readonly Endpoint[];
  queryTxt(name: string, signal?: AbortSignal): Promise<TxtAnswer>;
}

/** glibc reads at most three nameservers (MAXNS). */
const MAX_RESOLV_CONF_SERVERS = 3;

/** The `nameserver` lines of a resolv.conf; none means a local server, as in glibc. */
export function parseResolvConf(text: string): Endpoint[] {
  const servers: Endpoint[] = [];
  for (const line of text.split("\n")) {
    const address = /^\s*nameserver\s+(\S+)/.exec(line)?.[1];
    if (address === undefined || servers.length === MAX_RESOLV_CONF_SERVERS) continue;
    try {
      servers.push({ host: parseIpEndpoint(address).host, port: 53 });
    } catch {
      // glibc skips a line it cannot read, and so do we
    }
  }
  return servers.length > 0 ? servers : [{ host: "127.0.0.1", port: 53 }];
}

function serversOf(opts: DnsClientOptions): Endpoint[] {
  if (opts.servers !== undefined && opts.servers.length > 0) {
    try {
      return opts.servers.map(parseIpEndpoint);
    } catch (cause) {
      throw new DnsClientError("E_DNS_CONFIG", `bad DNS servers ${opts.servers}`, { cause });
    }
  }
  const path = opts.resolvConf ?? "/etc/resolv.conf";
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // no resolv.conf: glibc asks the local server
  }
  return parseResolvConf(text);
}

const sameName = (a: string, b: string): boolean =>
  a.toLowerCase().replace(/\.$/, "") === b.toLowerCase().replace(/\.$/, "");

const texts = (data: unknown): string[] =>
  (Array.isArray(data) ? data : [data]).map((d: unknown) =>
    Buffer.isBuffer(d) ? d.toString("utf8") : String(d),
  );

/** The TXT records for `name` in an answer, following CNAMEs, with the TTL they hold for. */
function readTxt(answer: dnsPacket.DecodedPacket, name: string): TxtAnswer {
  const question = answer.questions?.[0];
  if (question === undefined || question.type !== "TXT" || !sameName(question.name, name)) {
    throw new Error("the answer is for another question");
  }
  const rcode = rcodeOf(answer);
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) throw new Error(`rcode ${answer.rcode}`);
  const owners = [name];
  const records: string[][] = [];
  let ttl = Number.POSITIVE_INFINITY;
  for (const rr of rcode === RCODE.NOERROR ? (answer.answers ?? []) : []) {
    if (!owners.some((owner) => sameName(owner, rr.name))) continue;
    if (rr.type === "CNAME") owners.push(rr.data);
    else if (rr.type === "TXT") records.push(texts(rr.data));
    else continue;
    ttl = Math.min(ttl, rr.ttl ?? 0);
  }
  if (records.length > 0) return { records, ttl };
  const soa = answer.authorities?.find((rr) => rr.type === "SOA");
  return { records: [], ttl: soa ? Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0) : undefined };
}

const TC = 0x02; // in the third header octet

export function createDnsClient(opts: DnsClientOptions): DnsClient {
  const servers = serversOf(opts);
  const attemptMs = Math.max(1, Math.floor(opts.timeoutMs / servers.length));

  async function ask(server: Endpoint, name: string, signal?: AbortSignal): Promise<TxtAnswer> {
    const id = randomInt(0x10000);
    const query = dnsPacket.encode({
      type: "query",
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: "TXT", name, class: "IN" }],
    });
    const exchange = { timeoutMs: attemptMs, ...(signal ? { signal } : {}) };
    const isAnswer = (d: Buffer): boolean =>
      d.length >= 12 && d.readUInt16BE(0) === id && ((d[2] as number) & 0x80) !== 0;
    let raw = await exchangeUdp(server, query, { ...exchange, isAnswer });
    if (((raw[2] as number) & TC) !== 0) {
      raw = await exchangeTcp(server, query, exchange);
      if (!isAnswer(raw)) throw new Error("the TCP answer does not belong to the query");
    }
    return readTxt(decodeMessage(raw), name);
  }

  return {
    servers,
    async queryTxt(name, signal) {
      try {
        checkName(name);
      } catch (cause) {
        throw new DnsClientError("E_DNS_BAD_NAME", (cause as Error).message, { cause });
      }
      const failures: string[] = [];
      for (const server of servers) {
        try {
          return await ask(server, name, signal);
        } catch (e) {
          if (signal?.aborted) throw e;
          failures.push(`${formatEndpoint(server)}: ${e instanceof Error ? e.message : e}`);
        }
      }
      throw new DnsClientError("E_DNS_FAILED", `TXT ${name}: ${failures.join("; ")}`);
    },
  };
}
