/**
 * DNS provider over RFC 2136 dynamic update, signed with TSIG (BIND, Knot, PowerDNS...).
 * Every change is one UPDATE message, which the server applies atomically: `setCaa` deletes the
 * CAA set and adds the new records in the same message, so no reader ever sees the name
 * without CAA or with a half-written set. Answers must carry a valid TSIG and rcode NOERROR.
 */
import { Buffer } from "node:buffer";
import { randomInt } from "node:crypto";
import type dnsPacket from "dns-packet";
import { decodeMessage, RCODE, rcodeOf } from "../../../dns/packet.js";
import { CertError, reasonOf } from "../../errors.js";
import { type CaaRecord, type DnsCallOptions, type DnsProvider, inZone } from "../provider.js";
import { signMessage, type TsigAlgorithm, type TsigKey, verifyResponse } from "./tsig.js";
import {
  type Endpoint,
  exchangeTcp,
  formatEndpoint,
  parseEndpoint,
} from "../../../dns/transport.js";
import { encodeQuery, encodeUpdate, type UpdateRr } from "./wire.js";

export interface Rfc2136Options {
  /** `ip:port` of the primary server taking updates. */
  readonly server: string;
  /** Zone the names live in (the SOA question of each update). */
  readonly zone: string;
  readonly keyName: string;
  readonly algorithm: TsigAlgorithm;
  /** The TSIG secret, base64. */
  readonly secret: string;
  /** TTL of records we add. @default 60 */
  readonly ttl?: number;
  /** Bound on one exchange with the server. @default 10000 */
  readonly timeoutMs?: number;
}

export class Rfc2136Provider implements DnsProvider {
  readonly name: string;
  readonly server: Endpoint;
  readonly zone: string;
  readonly #key: TsigKey;
  readonly #ttl: number;
  readonly #timeoutMs: number;

  constructor(opts: Rfc2136Options) {
    this.server = parseEndpoint(opts.server);
    this.zone = opts.zone.replace(/\.$/, "");
    const secret = Buffer.from(opts.secret, "base64");
    if (secret.length === 0) throw new CertError("E_CERT_CONFIG", "the TSIG secret is empty");
    this.#key = { name: opts.keyName, algorithm: opts.algorithm, secret };
    this.#ttl = opts.ttl ?? 60;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.name = `rfc2136 ${formatEndpoint(this.server)}`;
  }

  async setTxt(name: string, value: string, opts?: DnsCallOptions): Promise<void> {
    // Adding an RR that exists is a no-op (RFC 2136 §3.4.2.2), so this is idempotent.
    await this.#update([{ name, class: "IN", txt: value }], opts, `add TXT ${name}`);
  }

  async removeTxt(name: string, value: string, opts?: DnsCallOptions): Promise<void> {
    // Class NONE deletes exactly this RR; other values of the same name stay.
    await this.#update([{ name, class: "NONE", txt: value }], opts, `remove TXT ${name}`);
  }

  async setCaa(name: string, records: readonly CaaRecord[], opts?: DnsCallOptions): Promise<void> {
    const clear: UpdateRr = { name, class: "ANY", type: "CAA" };
    const adds = records.map((caa): UpdateRr => ({ name, class: "IN", caa }));
    await this.#update([clear, ...adds], opts, `replace CAA ${name}`);
  }

  async listCaa(name: string, opts?: DnsCallOptions): Promise<CaaRecord[]> {
    const what = `query CAA ${name}`;
    const id = randomInt(0x10000);
    const raw = await this.#exchange(encodeQuery(id, name, "CAA"), opts, what);
    const parsed = this.#decode(raw, what);
    if (parsed.id !== id || parsed.type !== "response") {
      throw this.#error(what, "mismatched answer");
    }
    const rcode = rcodeOf(parsed);
    if (rcode === RCODE.NXDOMAIN) return [];
    if (rcode !== RCODE.NOERROR) throw this.#error(what, `rcode ${parsed.rcode}`);
    return (parsed.answers ?? []).flatMap((rr) =>
      rr.type === "CAA"
        ? [{ flags: rr.data.flags ?? 0, tag: rr.data.tag, value: rr.data.value }]
        : [],
    );
  }

  async #update(
    updates: UpdateRr[],
    opts: DnsCallOptions | undefined,
    what: string,
  ): Promise<void> {
    for (const rr of updates) {
      if (!inZone(rr.name, this.zone)) {
        throw new CertError("E_CERT_CONFIG", `${rr.name} is not in the zone ${this.zone}`);
      }
    }
    const id = randomInt(0x10000);
    const unsigned = encodeUpdate(id, this.zone, updates, this.#ttl);
    const { message, mac } = signMessage(unsigned, this.#key, Math.floor(Date.now() / 1000));
    const raw = await this.#exchange(message, opts, what);
    const parsed = this.#decode(raw, what);
    if (parsed.id !== id || parsed.type !== "response" || parsed.opcode !== "UPDATE") {
      throw this.#error(what, "the answer does not belong to our update");
    }
    const tsigProblem = verifyResponse(raw, this.#key, mac, Math.floor(Date.now() / 1000));
    if (rcodeOf(parsed) !== RCODE.NOERROR) {
      throw this.#error(what, `rcode ${parsed.rcode}${tsigProblem ? ` (${tsigProblem})` : ""}`);
    }
    if (tsigProblem !== undefined) throw this.#error(what, tsigProblem);
  }

  #decode(raw: Buffer, what: string): dnsPacket.DecodedPacket {
    try {
      return decodeMessage(raw);
    } catch (e) {
      throw this.#error(what, `unreadable answer: ${reasonOf(e)}`);
    }
  }

  async #exchange(
    message: Buffer,
    opts: DnsCallOptions | undefined,
    what: string,
  ): Promise<Buffer> {
    try {
      return await exchangeTcp(this.server, message, {
        timeoutMs: this.#timeoutMs,
        ...(opts?.signal ? { signal: opts.signal } : {}),
      });
    } catch (e) {
      if (opts?.signal?.aborted) throw e;
      throw this.#error(what, reasonOf(e), e);
    }
  }

  #error(what: string, why: string, cause?: unknown): CertError {
    return new CertError(
      "E_CERT_DNS",
      `${this.name}: ${what}: ${why}`,
      cause === undefined ? undefined : { cause },
    );
  }
}
