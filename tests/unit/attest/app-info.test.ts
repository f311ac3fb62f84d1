import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { appInfoJson, decodeAppInfo } from "../../../gateway-runtime/attest/app-info.js";
import { decodeMsgpack, MsgpackError } from "../../../gateway-runtime/attest/msgpack.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import { appInfoSpec, encodeAppInfo, type MsgIn, msgpack } from "../../../testkit/ra-tls.js";

/** What decodeMsgpack gives back for an encoder input (objects become Maps). */
function expected(v: MsgIn): unknown {
  if (Array.isArray(v)) return v.map(expected);
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (v !== null && typeof v === "object") {
    return new Map(Object.entries(v).map(([k, x]) => [k, expected(x)]));
  }
  return v;
}

const msgArb: fc.Arbitrary<MsgIn> = fc.letrec<{ v: MsgIn }>((tie) => ({
  v: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.nat({ max: 0xffffffff }),
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.array(tie("v"), { maxLength: 20 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie("v"), { maxKeys: 20 }),
  ),
})).v;

describe("decodeMsgpack", () => {
  it("decodes what a MessagePack encoder wrote (property)", () => {
    fc.assert(
      fc.property(msgArb, (v) => {
        expect(decodeMsgpack(msgpack(v))).toEqual(expected(v));
      }),
    );
  });

  it("never throws anything but MsgpackError on arbitrary bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeMsgpack(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(MsgpackError);
        }
      }),
    );
  });

  it.each([
    ["negative fixint", "ff", -1],
    ["int8", "d080", -128],
    ["uint64 beyond 2^53", "cf0020000000000001", 2n ** 53n + 1n],
    ["str8", "d903616263", "abc"],
  ])("reads %s", (_, hex, want) => {
    expect(decodeMsgpack(Buffer.from(hex, "hex"))).toEqual(want);
  });

  it.each([
    ["truncated bin", "c405aabb"],
    ["trailing byte", "c000"],
    ["float64", "cb3ff0000000000000"],
    ["array count beyond the input", "dd00010000"],
    ["map with an array key", "8190c0"],
    ["duplicate map key", "82a161c0a161c0"],
    ["invalid UTF-8", "a2c328"],
    ["nesting deeper than 16", `${"91".repeat(20)}c0`],
  ])("refuses %s", (_, hex) => {
    expect(() => decodeMsgpack(Buffer.from(hex, "hex"))).toThrow(MsgpackError);
  });
});

describe("decodeAppInfo", () => {
  const spec = appInfoSpec(
    "3763bc34552cf3a27ff71ad5f7a90471562a1a2d",
    "c3714eb66990eace777b4e664c16e09375dec4c9",
  );

  it("reads rmp_serde's array form and gives dstack's JSON shape", () => {
    const info = decodeAppInfo(encodeAppInfo({ ...spec, initScriptHashes: [Buffer.alloc(32, 7)] }));
    expect(Object.keys(appInfoJson(info))).toEqual([
      "app_id",
      "compose_hash",
      "instance_id",
      "device_id",
      "mr_system",
      "mr_aggregated",
      "os_image_hash",
      "key_provider_info",
      "init_script_hashes",
    ]);
    expect(appInfoJson(info)).toEqual({
      app_id: "3763bc34552cf3a27ff71ad5f7a90471562a1a2d",
      compose_hash: spec.composeHash.toString("hex"),
      instance_id: "c3714eb66990eace777b4e664c16e09375dec4c9",
      device_id: spec.deviceId.toString("hex"),
      mr_system: spec.mrSystem.toString("hex"),
      mr_aggregated: spec.mrAggregated.toString("hex"),
      os_image_hash: spec.osImageHash.toString("hex"),
      key_provider_info: spec.keyProviderInfo.toString("hex"),
      init_script_hashes: ["07".repeat(32)],
    });
  });

  it("accepts the 8-field array of images before init_script_hashes, and null", () => {
    const full = msgpack([
      spec.appId,
      spec.composeHash,
      spec.instanceId,
      spec.deviceId,
      spec.mrSystem,
      spec.mrAggregated,
      spec.osImageHash,
      spec.keyProviderInfo,
    ]);
    expect(decodeAppInfo(full).initScriptHashes).toBeNull();
    expect(
      decodeAppInfo(encodeAppInfo({ ...spec, initScriptHashes: null })).initScriptHashes,
    ).toBeNull();
  });

  it("accepts the named-map form (rmp_serde::to_vec_named)", () => {
    const named = msgpack({
      app_id: spec.appId,
      compose_hash: spec.composeHash,
      instance_id: spec.instanceId,
      device_id: spec.deviceId,
      mr_system: spec.mrSystem,
      mr_aggregated: spec.mrAggregated,
      os_image_hash: spec.osImageHash,
      key_provider_info: spec.keyProviderInfo,
      init_script_hashes: [],
    });
    expect(appInfoJson(decodeAppInfo(named))).toEqual(
      appInfoJson(decodeAppInfo(encodeAppInfo(spec))),
    );
  });

  it.each([
    ["not MessagePack", Buffer.from([0xc1])],
    ["a string", msgpack("app")],
    [
      "7 fields",
      msgpack([
        spec.appId,
        spec.composeHash,
        spec.instanceId,
        spec.deviceId,
        spec.mrSystem,
        spec.mrAggregated,
        spec.osImageHash,
      ]),
    ],
    ["a 31-byte mr_system", encodeAppInfo({ ...spec, mrSystem: Buffer.alloc(31) })],
    [
      "a hex string for app_id",
      msgpack([
        "aa",
        spec.composeHash,
        spec.instanceId,
        spec.deviceId,
        spec.mrSystem,
        spec.mrAggregated,
        spec.osImageHash,
        spec.keyProviderInfo,
        null,
      ]),
    ],
    [
      "6 init script hashes",
      encodeAppInfo({ ...spec, initScriptHashes: Array(6).fill(Buffer.alloc(32)) }),
    ],
    [
      "a 16-byte init script hash",
      encodeAppInfo({ ...spec, initScriptHashes: [Buffer.alloc(16)] }),
    ],
    ["an unknown named field", msgpack({ app_id: spec.appId, extra: 1 })],
  ])("refuses %s with E_ATTEST_BAD_APP_INFO", (_, bytes) => {
    let code = "none";
    try {
      decodeAppInfo(bytes);
    } catch (err) {
      code = err instanceof GatewayError ? err.code : "other";
    }
    expect(code).toBe("E_ATTEST_BAD_APP_INFO");
  });
});
