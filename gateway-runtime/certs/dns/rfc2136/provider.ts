/**
 * DNS provider over RFC 2136 dynamic update, signed with TSIG (BIND, Knot, PowerDNS...).
 * Every change is one UPDATE message, which the server applies atomically: `setCaa` deletes the
 * CAA set and adds the new records in the same message, so no reader ever sees the name
 * without CAA or with a half-written set. Answers must carry a valid TSIG and rcode NOERROR.
 */
import { Buffer } from "node:buffer";
import { randomInt } from "node:crypto";
import { CertError, reasonOf } from "../../errors.js";
import { type CaaRecord, type DnsCallOptions, type DnsProvider, inZone } from "../provider.js";
import { signMessage, type TsigAlgorithm, type TsigKey, verifyResponse } from "./tsig.js";
import { type Endpoint, exchangeTcp, formatEndpoint, parseEndpoint } from "./transport.js";
import {
  caaRdata,
  encodeMessage,
  OPCODE,
  parseCaaRdata,
  parseMessage,
  RCODE_NAMES,
  RR_CLASS,
  RR_TYPE,
  type Rr,
  txtRdata,
} from "./wire.js";

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
    const rdata = txtRdata(value);
    await this.#update([this.#rr(name, RR_TYPE.TXT, RR_CLASS.IN, rdata)], opts, `add TXT ${name}`);
  }

  async removeTxt(name: string, value: string, opts?: DnsCallOptions): Promise<void> {
    // Class NONE deletes exactly this RR; other values of the same name stay.
    const rr: Rr = {
      name,
      type: RR_TYPE.TXT,
      class: RR_CLASS.NONE,
      ttl: 0,
      rdata: txtRdata(value),
    };
    await this.#update([rr], opts, `remove TXT ${name}`);
  }

  async setCaa(name: string, records: readonly CaaRecord[], opts?: DnsCallOptions): Promise<void> {
    const clear: Rr = {
      name,
      type: RR_TYPE.CAA,
      class: RR_CLASS.ANY,
      ttl: 0,
      rdata: Buffer.alloc(0),
    };
    const adds = records.map((r) => this.#rr(name, RR_TYPE.CAA, RR_CLASS.IN, caaRdata(r)));
    await this.#update([clear, ...adds], opts, `replace CAA ${name}`);
  }

  async listCaa(name: string, opts?: DnsCallOptions): Promise<CaaRecord[]> {
    const id = randomInt(0x10000);
    const query = encodeMessage({
      id,
      opcode: OPCODE.QUERY,
      questions: [{ name, type: RR_TYPE.CAA, class: RR_CLASS.IN }],
    });
    const answer = await this.#exchange(query, opts, `query CAA ${name}`);
    const parsed = parseMessage(answer);
    if (parsed.id !== id || !parsed.qr) throw this.#error(`query CAA ${name}`, "mismatched answer");
    if (parsed.rcode === 3) return [];
    if (parsed.rcode !== 0) {
      throw this.#error(`query CAA ${name}`, `rcode ${RCODE_NAMES[parsed.rcode] ?? parsed.rcode}`);
    }
    return parsed.answers
      .filter((rr) => rr.type === RR_TYPE.CAA)
      .map((rr) => parseCaaRdata(rr.rdata));
  }

  #rr(name: string, type: number, klass: number, rdata: Buffer): Rr {
    return { name, type, class: klass, ttl: this.#ttl, rdata };
  }

  async #update(updates: Rr[], opts: DnsCallOptions | undefined, what: string): Promise<void> {
    for (const rr of updates) {
      if (!inZone(rr.name, this.zone)) {
        throw new CertError("E_CERT_CONFIG", `${rr.name} is not in the zone ${this.zone}`);
      }
    }
    const id = randomInt(0x10000);
    const unsigned = encodeMessage({
      id,
      opcode: OPCODE.UPDATE,
      questions: [{ name: this.zone, type: RR_TYPE.SOA, class: RR_CLASS.IN }],
      authority: updates,
    });
    const { message, mac } = signMessage(unsigned, this.#key, Math.floor(Date.now() / 1000));
    const raw = await this.#exchange(message, opts, what);
    let parsed: ReturnType<typeof parseMessage>;
    try {
      parsed = parseMessage(raw);
    } catch (e) {
      throw this.#error(what, `unreadable answer: ${reasonOf(e)}`);
    }
    if (parsed.id !== id || !parsed.qr || parsed.opcode !== OPCODE.UPDATE) {
      throw this.#error(what, "the answer does not belong to our update");
    }
    const tsigProblem = verifyResponse(raw, parsed, this.#key, mac, Math.floor(Date.now() / 1000));
    if (parsed.rcode !== 0) {
      const rcode = RCODE_NAMES[parsed.rcode] ?? String(parsed.rcode);
      throw this.#error(what, `rcode ${rcode}${tsigProblem ? ` (${tsigProblem})` : ""}`);
    }
    if (tsigProblem !== undefined) throw this.#error(what, tsigProblem);
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
