import { isIP } from "node:net";
import { z } from "zod";
import { parseDuration } from "./duration.js";
import { parseCidr } from "./net.js";
import { Secret } from "./secret.js";

/** What the reference table and the serializer need to know about a config key. */
export interface FieldMeta {
  /** Shown in the README reference table. */
  readonly doc: string;
  /** Human type name for the table, e.g. "duration" or "port". */
  readonly type: string;
  /** "duration" and "secret" change how a normalized value is written back to a file. */
  readonly kind?: "duration" | "secret";
  /** Set on keys this project adds beyond dstack's gateway.toml. */
  readonly added?: true;
  /**
   * Set on dstack keys this runtime accepts (so dstack's gateway.toml loads verbatim) but does
   * not act on: why it has none. The start-up warning, check-config's notes and the README
   * table all read it (no-effect.ts), so this is the one place to mark a key.
   */
  readonly noEffect?: string;
}

export const fieldMeta = z.registry<FieldMeta>();

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function isDnsName(name: string, minLabels = 1): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split(".");
  return labels.length >= minLabels && labels.every((l) => DNS_LABEL.test(l));
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "https:" || url.protocol === "http:") && url.hostname !== "";
  } catch {
    return false;
  }
}

/** `host:port` with host an IPv4 address, a DNS name, or an IPv6 address in brackets. */
export function isEndpoint(text: string): boolean {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return false;
  const port = Number(m[3]);
  const host = m[1] ?? m[2] ?? "";
  const hostOk = m[1] !== undefined ? isIP(host) === 6 : isIP(host) === 4 || isDnsName(host);
  return hostOk && port >= 1 && port <= 65535;
}

type Doc = { doc: string; added?: true; noEffect?: string };

function withMeta<T extends z.ZodType>(schema: T, type: string, d: Doc, kind?: FieldMeta["kind"]) {
  const meta: FieldMeta = {
    doc: d.doc,
    type,
    ...(kind ? { kind } : {}),
    ...(d.added ? { added: true as const } : {}),
    ...(d.noEffect ? { noEffect: d.noEffect } : {}),
  };
  fieldMeta.add(schema as z.ZodType, meta);
  return schema;
}

const text = (message: string) => z.string({ error: message });

export const str = {
  duration: () =>
    text('expected a duration like "5s", "10m", "1h" or "10d"').transform((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === undefined) {
        ctx.addIssue({
          code: "custom",
          message: 'expected a duration like "5s", "10m", "1h" or "10d"',
          input: s,
        });
        return z.NEVER;
      }
      return ms;
    }),
  port: () =>
    z
      .number({ error: "expected a port number 1-65535" })
      .int({ error: "expected a port number 1-65535" })
      .min(1, { error: "expected a port number 1-65535" })
      .max(65535, { error: "expected a port number 1-65535" }),
  dnsName: (minLabels = 1) =>
    text("expected a DNS name").refine((s) => isDnsName(s, minLabels), {
      error:
        minLabels > 1
          ? `expected a DNS name of at least ${minLabels} labels (lowercase)`
          : "expected a DNS name (lowercase letters, digits, hyphens)",
    }),
  url: () =>
    text("expected an http(s) URL").refine(isHttpUrl, { error: "expected an http(s) URL" }),
  cidr: () =>
    text("expected an IPv4 CIDR like 10.4.0.0/16").refine((s) => parseCidr(s) !== undefined, {
      error: "expected an IPv4 CIDR like 10.4.0.0/16",
    }),
  ip: () =>
    text("expected an IP address").refine((s) => isIP(s) !== 0, {
      error: "expected an IP address",
    }),
  endpoint: () =>
    text("expected host:port").refine(isEndpoint, {
      error: "expected host:port (IPv6 in brackets)",
    }),
  nonEmpty: (what = "a non-empty string") =>
    text(`expected ${what}`).min(1, { error: `expected ${what}` }),
  /** A secret: a plain string, or Pulumi's `{ secure: "..." }` form when read offline from a stack file. */
  secret: () =>
    z
      .union([z.string().min(1), z.strictObject({ secure: z.string().min(1) })], {
        error: "expected a non-empty secret string",
      })
      .transform((v) => (typeof v === "string" ? Secret.of(v) : Secret.encryptedValue())),
};

/** Field constructors: each registers its documentation, and takes the seed's value as default. */
export const field = {
  duration: (def: string, d: Doc) =>
    withMeta(str.duration().prefault(def), "duration", d, "duration"),
  /** dstack's `keep_alive` is a number of seconds; a duration string works too. */
  durationOrSeconds: (def: string, d: Doc) =>
    withMeta(
      z
        .preprocess(
          (v) => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? `${v}s` : v),
          str.duration(),
        )
        .prefault(def),
      "duration or seconds",
      d,
      "duration",
    ),
  port: (def: number, d: Doc) => withMeta(str.port().default(def), "port", d),
  bool: (def: boolean, d: Doc) =>
    withMeta(z.boolean({ error: "expected true or false" }).default(def), "boolean", d),
  int: (def: number, min: number, max: number, d: Doc) =>
    withMeta(
      z
        .number({ error: `expected an integer ${min}-${max}` })
        .int({ error: `expected an integer ${min}-${max}` })
        .min(min, { error: `expected an integer ${min}-${max}` })
        .max(max, { error: `expected an integer ${min}-${max}` })
        .default(def),
      "integer",
      d,
    ),
  path: (def: string, d: Doc) => withMeta(str.nonEmpty("a file path").default(def), "path", d),
  string: (def: string, d: Doc) => withMeta(str.nonEmpty().default(def), "string", d),
  ip: (def: string, d: Doc) => withMeta(str.ip().default(def), "IP address", d),
  cidr: (def: string, d: Doc) => withMeta(str.cidr().default(def), "IPv4 CIDR", d),
  cidrList: (def: string[], d: Doc) =>
    withMeta(
      z.array(str.cidr(), { error: "expected a list of IPv4 CIDRs" }).default(def),
      "list of IPv4 CIDR",
      d,
    ),
  url: (def: string, d: Doc) => withMeta(str.url().default(def), "URL", d),
  endpointList: (def: string[], d: Doc) =>
    withMeta(
      z.array(str.endpoint(), { error: "expected a list of host:port" }).default(def),
      "list of host:port",
      d,
    ),
  /** A table keyed by app id (lowercase hex). */
  table: <T extends z.ZodType>(value: T, d: Doc) =>
    withMeta(
      z
        .record(
          z.string().regex(/^[0-9a-f]{1,64}$/, { error: "expected an app id (lowercase hex)" }),
          value,
        )
        .default({}),
      "table by app id",
      d,
    ),
  choice: <const T extends readonly [string, ...string[]]>(values: T, def: T[number], d: Doc) =>
    withMeta(
      z.enum(values, { error: `expected one of ${values.join(", ")}` }).default(def as never),
      values.map((v) => `"${v}"`).join(" \\| "),
      d,
    ),
  /**
   * A key the Pulumi program fills in for each host (operator's schema only): a stack that sets
   * it is refused. Marked secret so the refusal never prints the value (a private key, often).
   */
  generated: () =>
    withMeta(
      z
        .undefined({
          error: "is generated by the Pulumi program for each host; remove it from the stack",
        })
        .optional(),
      "generated",
      { doc: "Generated by the Pulumi program" },
      "secret",
    ),
  /** Keys without a safe default (names, keys, addresses of this deployment). */
  required: {
    dnsName: (minLabels: number, d: Doc) => withMeta(str.dnsName(minLabels), "DNS name", d),
    endpoint: (d: Doc) => withMeta(str.endpoint(), "host:port", d),
    string: (d: Doc) => withMeta(str.nonEmpty(), "string", d),
    secret: (d: Doc) => withMeta(str.secret(), "secret", d, "secret"),
  },
  /** Keys needed only when their feature is enabled; the schema's cross checks say when. */
  optional: {
    dnsName: (minLabels: number, d: Doc) =>
      withMeta(str.dnsName(minLabels).optional(), "DNS name", d),
    url: (d: Doc) => withMeta(str.url().optional(), "URL", d),
    endpoint: (d: Doc) => withMeta(str.endpoint().optional(), "host:port", d),
    string: (d: Doc) => withMeta(str.nonEmpty().optional(), "string", d),
    secret: (d: Doc) => withMeta(str.secret().optional(), "secret", d, "secret"),
  },
};

/** A config section: unknown keys are errors; a missing section takes every default. */
export function section<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape).prefault({} as never);
}
