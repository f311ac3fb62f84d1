/**
 * DNS provider over the Cloudflare v4 API with the official SDK (`client.dns.records`): list,
 * create, delete in one zone. A token needs Zone:Read and DNS:Edit.
 *
 * TXT content is sent quoted (the API documents TXT content as quoted character-strings) and
 * matched quoted or not, so records made by other tools are recognised.
 *
 * The SDK's tree-shakable client with only the DNS records resource keeps the whole API surface
 * (megabytes of generated code) out of the gateway bundle.
 *
 * `setCaa` is not atomic here (the API has no transaction across records that the SDK's
 * `batch` guarantees to propagate atomically): it creates the missing new records first and
 * only then deletes the old ones. In between, the name has the union of old and new CAA
 * records, which permits every issuer either set permits, so the domain can always renew.
 */
import { BaseRecords } from "cloudflare/resources/dns/records";
import { createClient } from "cloudflare/tree-shakable";
import { CertError, reasonOf } from "../errors.js";
import {
  type CaaRecord,
  type DnsCallOptions,
  type DnsProvider,
  normalizeName,
  sameCaa,
} from "./provider.js";

export interface CloudflareOptions {
  readonly apiToken: string;
  readonly zoneId: string;
  /** @default "https://api.cloudflare.com/client/v4" */
  readonly baseURL?: string;
  /** TTL of records we create; 1 means automatic. @default 60 */
  readonly ttl?: number;
  /** Bound on one API request. @default 30000 */
  readonly timeoutMs?: number;
  /** Retries of one request on 429 / 5xx / connection errors (the SDK's own). @default 2 */
  readonly maxRetries?: number;
}

interface ListedRecord {
  readonly id: string;
  readonly content: string;
  readonly data: CaaRecord | undefined;
}

/** `"abc"` -> `abc`; `"a" "b"` -> `ab`; unquoted content is returned as is. */
export function unquoteTxtContent(content: string): string {
  const chunks = [...content.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? "");
  if (chunks.length === 0 || !content.trim().startsWith('"')) return content;
  return chunks.join("").replace(/\\(.)/g, "$1");
}

function quoteTxtContent(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

function newClient(opts: CloudflareOptions) {
  return createClient({
    apiToken: opts.apiToken,
    apiKey: null, // never taken from CLOUDFLARE_* environment variables
    apiEmail: null,
    userServiceKey: null,
    baseURL: opts.baseURL ?? "https://api.cloudflare.com/client/v4",
    timeout: opts.timeoutMs ?? 30_000,
    maxRetries: opts.maxRetries ?? 2,
    logLevel: "off",
    resources: [BaseRecords],
  });
}

export class CloudflareProvider implements DnsProvider {
  readonly name = "cloudflare";
  readonly #client: ReturnType<typeof newClient>;
  readonly #zoneId: string;
  readonly #ttl: number;

  constructor(opts: CloudflareOptions) {
    this.#client = newClient(opts);
    this.#zoneId = opts.zoneId;
    this.#ttl = opts.ttl ?? 60;
  }

  async setTxt(name: string, value: string, opts?: DnsCallOptions): Promise<void> {
    const existing = await this.#list(name, "TXT", opts);
    if (existing.some((r) => unquoteTxtContent(r.content) === value)) return;
    await this.#call(`create TXT ${name}`, opts, (o) =>
      this.#client.dns.records.create(
        {
          zone_id: this.#zoneId,
          type: "TXT",
          name: normalizeName(name),
          content: quoteTxtContent(value),
          ttl: this.#ttl,
        },
        o,
      ),
    );
  }

  async removeTxt(name: string, value: string, opts?: DnsCallOptions): Promise<void> {
    const existing = await this.#list(name, "TXT", opts);
    for (const r of existing.filter((x) => unquoteTxtContent(x.content) === value)) {
      await this.#delete(r.id, `delete TXT ${name}`, opts);
    }
  }

  async setCaa(name: string, records: readonly CaaRecord[], opts?: DnsCallOptions): Promise<void> {
    const existing = await this.#list(name, "CAA", opts);
    for (const want of records) {
      if (existing.some((r) => r.data !== undefined && sameCaa(r.data, want))) continue;
      await this.#call(`create CAA ${name}`, opts, (o) =>
        this.#client.dns.records.create(
          {
            zone_id: this.#zoneId,
            type: "CAA",
            name: normalizeName(name),
            data: { flags: want.flags, tag: want.tag, value: want.value },
            ttl: this.#ttl,
          },
          o,
        ),
      );
    }
    for (const old of existing) {
      if (old.data !== undefined && records.some((want) => sameCaa(old.data as CaaRecord, want))) {
        continue;
      }
      await this.#delete(old.id, `delete CAA ${name}`, opts);
    }
  }

  async listCaa(name: string, opts?: DnsCallOptions): Promise<CaaRecord[]> {
    const listed = await this.#list(name, "CAA", opts);
    return listed.flatMap((r) => (r.data === undefined ? [] : [r.data]));
  }

  async #list(name: string, type: "TXT" | "CAA", opts?: DnsCallOptions): Promise<ListedRecord[]> {
    return this.#call(`list ${type} ${name}`, opts, async (o) => {
      const out: ListedRecord[] = [];
      const pages = this.#client.dns.records.list(
        { zone_id: this.#zoneId, type, name: { exact: normalizeName(name) }, per_page: 100 },
        o,
      );
      for await (const r of pages) {
        if (r.type !== type || r.id === undefined) continue;
        const data =
          r.type === "CAA" && r.data !== undefined
            ? { flags: r.data.flags ?? 0, tag: r.data.tag ?? "", value: r.data.value ?? "" }
            : undefined;
        out.push({ id: r.id, content: r.content ?? "", data });
      }
      return out;
    });
  }

  async #delete(id: string, what: string, opts?: DnsCallOptions): Promise<void> {
    await this.#call(what, opts, (o) =>
      this.#client.dns.records.delete(id, { zone_id: this.#zoneId }, o),
    );
  }

  async #call<T>(
    what: string,
    opts: DnsCallOptions | undefined,
    fn: (o: { signal?: AbortSignal }) => Promise<T>,
  ): Promise<T> {
    try {
      return await fn(opts?.signal ? { signal: opts.signal } : {});
    } catch (e) {
      if (opts?.signal?.aborted) throw e;
      throw new CertError("E_CERT_DNS", `cloudflare: ${what}: ${reasonOf(e)}`, { cause: e });
    }
  }
}
