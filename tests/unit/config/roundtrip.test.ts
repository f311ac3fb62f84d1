import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ConfigFormat,
  parseConfigText,
  parseGatewayConfig,
  serializeConfig,
  toConfigObject,
} from "../../../gateway-runtime/config/index.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { SEED_TOML } from "../../helpers/seed.js";
import { readFileSync } from "node:fs";

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const domain = fc.array(label, { minLength: 2, maxLength: 4 }).map((labels) => labels.join("."));
const duration = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 500 }), fc.constantFrom("ms", "s", "m", "h", "d")), {
    minLength: 1,
    maxLength: 3,
  })
  .map((parts) => parts.map(([n, unit]) => `${n}${unit}`).join(""));
const secret = fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" });
// The RPC, TLS, admin and http redirect ports: a config may not use one TCP port twice.
const ports = fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { minLength: 4, maxLength: 4 });

const configs = fc
  .record({
    ports,
    baseDomain: domain,
    rpcDomain: domain,
    durations: fc.array(duration, { minLength: 4, maxLength: 4 }),
    keepAlive: fc.oneof(fc.integer({ min: 0, max: 3600 }), duration),
    flags: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
    token: secret,
    topN: fc.integer({ min: 1, max: 32 }),
    logLevel: fc.constantFrom("trace", "debug", "info", "warn", "error"),
    prefix: fc.stringMatching(/^_[a-z-]{1,20}$/),
  })
  .map((g) => {
    let raw = minimalConfig();
    const put = (path: string, value: unknown) => {
      raw = withKey(raw, path, value);
    };
    put("port", g.ports[0]);
    put("core.proxy.listen_port", g.ports[1]);
    put("core.admin.port", g.ports[2]);
    put("core.proxy.http_port", g.ports[3]);
    put("core.proxy.base_domain", g.baseDomain);
    put("core.rpc_domain", g.rpcDomain);
    put("keep_alive", g.keepAlive);
    put("log_level", g.logLevel);
    put("core.proxy.timeouts.connect", g.durations[0]);
    put("core.proxy.timeouts.total", g.durations[1]);
    put("core.recycle.timeout", g.durations[2]);
    put("core.certbot.renew_before_expiration", g.durations[3]);
    put("core.proxy.timeouts.data_timeout_enabled", g.flags[0]);
    put("core.recycle.enabled", g.flags[1]);
    put("core.set_ulimit", g.flags[2]);
    put("core.proxy.connect_top_n", g.topN);
    put("core.proxy.app_address_ns_prefix", g.prefix);
    put("core.certbot.cf_api_token", g.token);
    return raw;
  });

const formats: ConfigFormat[] = ["toml", "json", "yaml"];

describe("a normalized config survives a round trip through every format", () => {
  it.each(formats)("%s", (format) => {
    fc.assert(
      fc.property(configs, (raw) => {
        const config = parseGatewayConfig(raw, "generated");
        const text = serializeConfig(toConfigObject(config), format);
        const again = parseConfigText(text, format, `generated.${format}`);
        expect(toConfigObject(again)).toEqual(toConfigObject(config));
        expect(JSON.stringify(again)).toBe(JSON.stringify(config));
      }),
      { numRuns: 150 },
    );
  });

  it.each(formats)("the seed, written as %s and read back, is unchanged", (format) => {
    const seed = parseConfigText(readFileSync(SEED_TOML, "utf8"), "toml", "seed");
    const again = parseConfigText(serializeConfig(toConfigObject(seed), format), format, "copy");
    expect(toConfigObject(again)).toEqual(toConfigObject(seed));
  });
});
