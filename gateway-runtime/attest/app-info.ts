/**
 * dstack's `AppInfo` (dstack-attest `attestation.rs`): the identity and measurements of a CVM.
 * It travels in two encodings, both handled here:
 * - in the RA-TLS extension 1.3.6.1.4.1.62397.1.9, `rmp_serde::to_vec` output: a MessagePack
 *   array in field order, byte fields as `bin` (named maps are accepted too);
 * - to the authorization URL, `serde_json`: an object whose byte fields are lowercase hex.
 */
import { decodeMsgpack, MsgpackError, type MsgValue } from "./msgpack.js";
import { attestError } from "./types.js";

export interface AppInfo {
  readonly appId: Buffer;
  readonly composeHash: Buffer;
  readonly instanceId: Buffer;
  readonly deviceId: Buffer;
  /** 32 bytes. */
  readonly mrSystem: Buffer;
  /** 32 bytes. */
  readonly mrAggregated: Buffer;
  readonly osImageHash: Buffer;
  readonly keyProviderInfo: Buffer;
  /** SHA-256 pins of init scripts; null when the evidence did not bind them. */
  readonly initScriptHashes: readonly Buffer[] | null;
}

/** The JSON body dstack-gateway POSTs to `core.auth.url` (serde_json of `AppInfo`). */
export interface AppInfoJson {
  app_id: string;
  compose_hash: string;
  instance_id: string;
  device_id: string;
  mr_system: string;
  mr_aggregated: string;
  os_image_hash: string;
  key_provider_info: string;
  init_script_hashes: string[] | null;
}

/** Field order of the Rust struct, which is the order of the MessagePack array. */
export const APP_INFO_FIELDS = [
  "app_id",
  "compose_hash",
  "instance_id",
  "device_id",
  "mr_system",
  "mr_aggregated",
  "os_image_hash",
  "key_provider_info",
  "init_script_hashes",
] as const;

/** dstack-types `MAX_INIT_SCRIPTS`. */
const MAX_INIT_SCRIPTS = 5;

function fail(message: string, cause?: unknown) {
  return attestError("E_ATTEST_BAD_APP_INFO", `app info extension: ${message}`, cause);
}

function bytes(v: MsgValue | undefined, field: string, size?: number): Buffer {
  if (!(v instanceof Uint8Array)) throw fail(`${field} is not a byte string`);
  if (size !== undefined && v.length !== size) {
    throw fail(`${field} is ${v.length} bytes, expected ${size}`);
  }
  return Buffer.from(v);
}

function scripts(v: MsgValue | undefined): Buffer[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw fail("init_script_hashes is not an array");
  if (v.length > MAX_INIT_SCRIPTS) {
    throw fail(`init_script_hashes has ${v.length} entries, at most ${MAX_INIT_SCRIPTS}`);
  }
  return v.map((h, k) => bytes(h, `init_script_hashes[${k}]`, 32));
}

/** Decodes the app-info extension's bytes. Throws `E_ATTEST_BAD_APP_INFO`. */
export function decodeAppInfo(encoded: Uint8Array): AppInfo {
  let root: MsgValue;
  try {
    root = decodeMsgpack(encoded);
  } catch (cause) {
    if (cause instanceof MsgpackError) throw fail(cause.message, cause);
    throw cause;
  }
  let get: (field: (typeof APP_INFO_FIELDS)[number]) => MsgValue | undefined;
  if (Array.isArray(root)) {
    // serde's sequence form: a trailing `#[serde(default)]` field may be missing.
    if (root.length < APP_INFO_FIELDS.length - 1 || root.length > APP_INFO_FIELDS.length) {
      throw fail(`array of ${root.length} fields, expected 8 or 9`);
    }
    get = (field) => root[APP_INFO_FIELDS.indexOf(field)];
  } else if (root instanceof Map) {
    const known = new Set<MsgValue>(APP_INFO_FIELDS);
    for (const key of root.keys()) {
      if (!known.has(key)) throw fail(`unknown field ${String(key)}`);
    }
    get = (field) => root.get(field);
  } else {
    throw fail("not a MessagePack array or map");
  }
  return {
    appId: bytes(get("app_id"), "app_id"),
    composeHash: bytes(get("compose_hash"), "compose_hash"),
    instanceId: bytes(get("instance_id"), "instance_id"),
    deviceId: bytes(get("device_id"), "device_id"),
    mrSystem: bytes(get("mr_system"), "mr_system", 32),
    mrAggregated: bytes(get("mr_aggregated"), "mr_aggregated", 32),
    osImageHash: bytes(get("os_image_hash"), "os_image_hash"),
    keyProviderInfo: bytes(get("key_provider_info"), "key_provider_info"),
    initScriptHashes: scripts(get("init_script_hashes")),
  };
}

/** The authorization request body, in dstack's field order and encoding. */
export function appInfoJson(info: AppInfo): AppInfoJson {
  const hex = (b: Buffer) => b.toString("hex");
  return {
    app_id: hex(info.appId),
    compose_hash: hex(info.composeHash),
    instance_id: hex(info.instanceId),
    device_id: hex(info.deviceId),
    mr_system: hex(info.mrSystem),
    mr_aggregated: hex(info.mrAggregated),
    os_image_hash: hex(info.osImageHash),
    key_provider_info: hex(info.keyProviderInfo),
    init_script_hashes: info.initScriptHashes?.map(hex) ?? null,
  };
}
