/**
 * Stand-in for @pulumi/cloudflare 6.x's `cloudflare:index/dnsRecord:DnsRecord` and the
 * `cloudflare:index/getZone:getZone` invoke (the provider binary cannot be installed and
 * Cloudflare's API cannot be reached here). Inputs are checked against the provider's
 * documented shapes (required zoneId, name, ttl, type; `content` for simple records, `data`
 * {flags, tag, value} for CAA; ttl 1 = automatic or 60-86400; `proxied` only on A/AAAA/CNAME;
 * the name inside its zone) and each record is applied to a `DnsSink` (the lab's BIND). A zoneId
 * change replaces the record; any other change updates it in place.
 */
import { createHash, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { type Props, reveal, type Value } from "../values.js";
import { type CheckResult, type DiffResult, type Provider, ProviderError } from "./types.js";
import { checkLoadBalancing, isLoadBalancing, typeOfUrn } from "./cloudflare-lb.js";

export interface DnsRecordValue {
  /** Fully qualified, no trailing dot. */
  name: string;
  type: string;
  /** In zone-file presentation form (TXT quoted, CAA `flags tag "value"`). */
  value: string;
  ttl: number;
}

export interface DnsSink {
  add(record: DnsRecordValue): Promise<void>;
  remove(record: DnsRecordValue): Promise<void>;
}

export interface CloudflareOptions {
  /** The account's zones by name. `"any"`: every zone asked for exists, with an id derived from its name (offline plans). */
  zones: Record<string, string> | "any";
  sink?: DnsSink;
}

const TYPES = new Set([
  "A",
  "AAAA",
  "CNAME",
  "MX",
  "NS",
  "PTR",
  "TXT",
  "CAA",
  "SRV",
  "HTTPS",
  "SVCB",
]);
const CAA_TAGS = new Set(["issue", "issuewild", "iodef"]);
const nameOf = (urn: string) => urn.split("::").pop() ?? urn;

/** Presentation-form value of a record: what the zone (and `dig`) shows. */
export function recordValue(props: Props): DnsRecordValue {
  const type = String(props.type);
  const ttl = props.ttl === 1 ? 300 : Number(props.ttl);
  const name = String(props.name).replace(/\.$/, "");
  if (type === "CAA") {
    const data = props.data as { flags: Value; tag: string; value: string };
    return { name, type, ttl, value: `${Number(data.flags)} ${data.tag} "${data.value}"` };
  }
  const content = String(props.content);
  return {
    name,
    type,
    ttl,
    // Cloudflare takes TXT content quoted or bare; the zone holds the quoted form.
    value:
      type === "TXT" && !/^".*"$/.test(content) ? `"${content.replaceAll('"', '\\"')}"` : content,
  };
}

export function cloudflareProvider(options: CloudflareOptions): Provider {
  const zoneIdOf = (name: string): string | undefined =>
    options.zones === "any"
      ? createHash("sha256").update(`zone:${name}`).digest("hex").slice(0, 32)
      : options.zones[name];
  const zoneNameOf = (id: string): string | undefined => {
    if (options.zones === "any") return undefined;
    return Object.entries(options.zones).find(([, zid]) => zid === id)?.[0];
  };

  function validate(p: Props): { property: string; reason: string }[] {
    const failures: { property: string; reason: string }[] = [];
    const fail = (property: string, reason: string) => failures.push({ property, reason });
    for (const key of ["zoneId", "name", "type", "ttl"]) {
      if (p[key] === undefined || p[key] === null) fail(key, `missing required property '${key}'`);
    }
    const type = String(p.type);
    if (p.type !== undefined && !TYPES.has(type)) fail("type", `unsupported record type ${type}`);
    if (typeof p.ttl === "number" && p.ttl !== 1 && (p.ttl < 60 || p.ttl > 86400)) {
      fail("ttl", `ttl must be 1 (automatic) or between 60 and 86400, got ${p.ttl}`);
    }
    if (type === "CAA") {
      const data = p.data as Record<string, Value> | undefined;
      if (p.content !== undefined) fail("content", "CAA records take data, not content");
      if (!data || typeof data !== "object")
        fail("data", "CAA records need data {flags, tag, value}");
      else {
        if (!CAA_TAGS.has(String(data.tag)))
          fail("data.tag", `CAA tag must be issue, issuewild or iodef, got ${data.tag}`);
        if (typeof data.value !== "string" || data.value === "")
          fail("data.value", "CAA value is required");
        const flags = Number(data.flags ?? 0);
        if (!Number.isInteger(flags) || flags < 0 || flags > 255)
          fail("data.flags", "CAA flags must be 0-255");
      }
    } else if (typeof p.content !== "string" || p.content === "") {
      fail("content", `${type} records need content`);
    } else if (type === "A" && isIP(p.content) !== 4) {
      fail("content", `${p.content} is not an IPv4 address`);
    } else if (type === "AAAA" && isIP(p.content) !== 6) {
      fail("content", `${p.content} is not an IPv6 address`);
    }
    if (p.proxied === true && !["A", "AAAA", "CNAME"].includes(type))
      fail("proxied", `${type} records cannot be proxied`);
    if (typeof p.comment === "string" && p.comment.length > 100)
      fail("comment", "comment is longer than 100 characters");
    const zone = typeof p.zoneId === "string" ? zoneNameOf(p.zoneId) : undefined;
    if (options.zones !== "any" && typeof p.zoneId === "string" && zone === undefined) {
      fail("zoneId", `no zone with id ${p.zoneId} in this account`);
    }
    const name = String(p.name ?? "").replace(/\.$/, "");
    if (zone !== undefined && name !== zone && !name.endsWith(`.${zone}`)) {
      fail("name", `${name} is not inside the zone ${zone}`);
    }
    return failures;
  }

  return {
    async check({ urn, news }): Promise<CheckResult> {
      const plain = reveal(news) as Props;
      const type = typeOfUrn(urn);
      if (isLoadBalancing(type)) return { inputs: news, failures: checkLoadBalancing(type, plain) };
      const inputs = { ...news, proxied: news.proxied ?? false };
      return { inputs, failures: validate({ ...plain, proxied: plain.proxied ?? false }) };
    },
    async diff({ oldInputs, news }): Promise<DiffResult> {
      const keys = [...new Set([...Object.keys(oldInputs), ...Object.keys(news)])].filter(
        (k) =>
          k !== "version" &&
          !k.startsWith("__") &&
          JSON.stringify(reveal(oldInputs[k] ?? null)) !== JSON.stringify(reveal(news[k] ?? null)),
      );
      return {
        changes: keys.length > 0 ? "some" : "none",
        replaces: keys.includes("zoneId") ? ["zoneId"] : [],
        deleteBeforeReplace: false,
      };
    },
    async create({ urn, news }) {
      // Load balancing has no sink: its id is what pools and the balancer refer to.
      if (isLoadBalancing(typeOfUrn(urn))) {
        return { id: randomBytes(16).toString("hex"), outputs: { ...news } };
      }
      if (!options.sink) throw new ProviderError(`${nameOf(urn)}: no DNS to write to`);
      await options.sink.add(recordValue(reveal(news) as Props));
      const now = new Date().toISOString();
      return {
        id: randomBytes(16).toString("hex"),
        outputs: {
          ...news,
          createdOn: now,
          modifiedOn: now,
          proxiable: ["A", "AAAA", "CNAME"].includes(String(news.type)),
        },
      };
    },
    async update({ urn, olds, oldInputs, news }) {
      if (isLoadBalancing(typeOfUrn(urn))) return { outputs: { ...olds, ...news } };
      if (!options.sink) throw new ProviderError(`${nameOf(urn)}: no DNS to write to`);
      await options.sink.remove(recordValue(reveal(oldInputs) as Props));
      await options.sink.add(recordValue(reveal(news) as Props));
      return { outputs: { ...olds, ...news, modifiedOn: new Date().toISOString() } };
    },
    async delete({ urn, oldInputs }) {
      if (isLoadBalancing(typeOfUrn(urn))) return;
      if (!options.sink) throw new ProviderError(`${nameOf(urn)}: no DNS to write to`);
      await options.sink.remove(recordValue(reveal(oldInputs) as Props));
    },
    async invoke(token, args) {
      if (token !== "cloudflare:index/getZone:getZone")
        throw new ProviderError(`the cloudflare stand-in does not answer ${token}`);
      const filter = (args.filter ?? {}) as { name?: string };
      const name =
        filter.name ?? (typeof args.zoneId === "string" ? zoneNameOf(args.zoneId) : undefined);
      const id = name === undefined ? undefined : zoneIdOf(name);
      if (name === undefined || id === undefined)
        throw new ProviderError(`getZone: no zone matches ${JSON.stringify(args)}`);
      return {
        id,
        zoneId: id,
        name,
        status: "active",
        type: "full",
        paused: false,
        nameServers: [],
        account: { id: "account", name: "account" },
      };
    },
  };
}
