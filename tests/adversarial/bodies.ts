/**
 * fast-check shapes of hostile request bodies for the RPC and the admin API: wrong types,
 * strings near the body limit, deep nesting, prototype keys, weak and malformed WireGuard keys,
 * and text that is no JSON at all. None carries a usable WireGuard key at the top level.
 */
import fc from "fast-check";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";

/** A key no instance holds: a body that smuggles it anywhere but the top level must not register. */
const spare = generateWgKeyPair().publicKey;

const b64 = (hex: string) => Buffer.from(hex, "hex").toString("base64");
const weakKeys = [
  b64("00".repeat(32)),
  b64(`01${"00".repeat(31)}`),
  b64(`ec${"ff".repeat(30)}7f`),
  b64(`ec${"ff".repeat(30)}ff`), // the top bit, which X25519 ignores
];

const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
);

const badKey = fc.oneof(
  fc.constantFrom(...weakKeys),
  fc.string({ maxLength: 60 }),
  fc.uint8Array({ minLength: 0, maxLength: 40 }).map((b) => Buffer.from(b).toString("base64")),
  fc.constantFrom(`${spare}=`, ` ${spare}`, spare.slice(1), spare.replace(/=$/, ""), `${spare}\n`),
  wrongType,
);

/** Near the RPC's 64 KiB body limit, and over the admin API's 4 KiB. */
const hugeString = fc.integer({ min: 4_000, max: 64_000 }).map((n) => "A".repeat(n));

/** Nesting to depths JSON.parse handles and schema walkers might not. */
const deep = fc.oneof(
  fc.integer({ min: 1, max: 20_000 }).map((d) => `${"[".repeat(d)}${"]".repeat(d)}`),
  fc.integer({ min: 1, max: 5_000 }).map((d) => `${'{"a":'.repeat(d)}1${"}".repeat(d)}`),
  fc
    .integer({ min: 1, max: 5_000 })
    .map((d) => `{"client_public_key":${'{"k":'.repeat(d)}1${"}".repeat(d)}}`),
);

const protoKeys = fc.constantFrom(
  `{"__proto__":{"client_public_key":"${spare}"}}`,
  `{"constructor":{"prototype":{"client_public_key":"${spare}"}}}`,
  `{"client_public_key":{"__proto__":"${spare}"}}`,
  `{"client_public_key":"${weakKeys[0]}","__proto__":{"port_policy":{"ports":[]}}}`,
  `{"client_public_key":"x","port_policy":{"__proto__":{"restrict_mode":true}}}`,
  `{"id":{"__proto__":"x"}}`,
  `{"__proto__":{"id":"x"}}`,
  `{"constructor":"x","toString":1,"hasOwnProperty":null,"valueOf":[]}`,
);

const portPolicy = fc.record(
  {
    ports: fc.oneof(
      fc.array(fc.record({ port: fc.oneof(fc.integer(), wrongType), pp: fc.anything() })),
      wrongType,
    ),
    restrict_mode: fc.anything(),
  },
  { requiredKeys: [] },
);

/** A RegisterCvm body the RPC must refuse with 4xx. */
export const registerBody: fc.Arbitrary<string> = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.record({ client_public_key: badKey }).map((v) => JSON.stringify(v)),
  fc
    .record({ client_public_key: badKey, port_policy: fc.oneof(portPolicy, wrongType) })
    .map((v) => JSON.stringify(v)),
  hugeString.map((s) => JSON.stringify({ client_public_key: s })),
  deep,
  protoKeys,
  fc.string(), // mostly not JSON
  fc.constantFrom("", "{", "nul", "{}", "[]", "null", '"', "\u0000", "\ufeff{}"),
);

/** An admin GetInfo body: any of the above, and `id`s of every type. */
export const adminBody: fc.Arbitrary<string> = fc.oneof(
  registerBody,
  fc.record({ id: fc.oneof(fc.string(), wrongType, hugeString) }).map((v) => JSON.stringify(v)),
  fc.constantFrom('{"id":"__proto__"}', '{"id":"constructor"}', '{"id":"toString"}'),
);

/** Content types that are not JSON to the RPC (it wants `application/json`, or `?json`). */
export const notJsonType: fc.Arbitrary<string> = fc
  .oneof(
    fc.constantFrom(
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/jsonp",
      "application/xml",
      "json",
      "",
    ),
    fc.string({ maxLength: 40 }).filter((t) => !/^application\/json\b/i.test(t)),
  )
  .filter((t) => /^[\t\x20-\x7e]*$/.test(t) && t.trim() === t);

/** A policy the admin API takes, and values no field of one can be. */
const goodPolicy = fc.constantFrom(
  { ports: [], restrict_mode: true },
  { ports: [{ port: 443, pp: false }] },
);
const notObject = fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.array(fc.integer()));

const WRITE_CALLS = [
  "SetInstanceReady",
  "SetInstancePortPolicy",
  "ClearInstancePortPolicy",
  "RemoveInstance",
  "ForceRemoveInstance",
] as const;

/**
 * `[call, body]` for the admin calls that write an instance, each of which the call must
 * refuse: well-formed for ids no instance has (near `realId`: cased, padded, a path around it,
 * prototype names), or naming `realId` with a `ready` or a `policy` of the wrong type, or any
 * malformed admin body.
 */
export function adminWrite(realId: string): fc.Arbitrary<[string, string]> {
  const unknownId = fc
    .oneof(
      fc.string({ minLength: 1, maxLength: 80 }),
      fc.constantFrom(
        realId.toUpperCase(),
        ` ${realId}`,
        `${realId}\n`,
        `${realId}/`,
        `../${realId}`,
        `${realId}\u0000`,
        realId.slice(1),
        "__proto__",
        "constructor",
        "/",
        "*",
      ),
    )
    .filter((id) => id !== realId);
  const json = (v: unknown) => JSON.stringify(v);
  const anyCall = fc.constantFrom(...WRITE_CALLS);
  return fc.oneof(
    fc.tuple(
      anyCall,
      fc.record({ instance_id: unknownId, ready: fc.boolean(), policy: goodPolicy }).map(json),
    ),
    fc.tuple(
      fc.constant("SetInstanceReady"),
      fc
        .record({
          instance_id: fc.constant(realId),
          ready: fc.oneof(notObject, fc.constant("false")),
        })
        .map(json),
    ),
    fc.tuple(
      fc.constant("SetInstancePortPolicy"),
      fc.record({ instance_id: fc.constant(realId), policy: notObject }).map(json),
    ),
    fc.tuple(
      anyCall,
      fc
        .record({ instance_id: fc.oneof(wrongType, fc.constant("")), ready: fc.boolean() })
        .map(json),
    ),
    fc.tuple(anyCall, adminBody),
  );
}
