import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  loadConfigFile,
  parseDuration,
  toRedactedObject,
} from "../../../gateway-runtime/config/index.js";
import { SEED_TOML } from "../../helpers/seed.js";

describe("the seed gateway.toml", () => {
  const config = loadConfigFile(SEED_TOML);

  it("loads verbatim and normalizes durations to milliseconds", () => {
    expect(config.keep_alive).toBe(10_000);
    expect(config.core.auth.timeout).toBe(5_000);
    expect(config.core.certbot.renew_interval).toBe(3_600_000);
    expect(config.core.certbot.renew_before_expiration).toBe(864_000_000);
    expect(config.core.certbot.renew_timeout).toBe(300_000);
    expect(config.core.proxy.timeouts).toEqual({
      connect: 5_000,
      handshake: 5_000,
      cache_top_n: 30_000,
      data_timeout_enabled: true,
      idle: 600_000,
      write: 5_000,
      shutdown: 5_000,
      total: 18_000_000,
      dns_resolve: 2_000,
    });
    expect(config.core.sync).toEqual({
      enabled: true,
      interval: 30_000,
      broadcast_interval: 600_000,
      timeout: 2_000,
      my_url: "https://gateway1.example.com:8001",
      bootnode: "https://bootnode.example.com:8001",
    });
    expect(config.core.recycle).toEqual({
      enabled: true,
      interval: 300_000,
      timeout: 36_000_000,
      node_timeout: 600_000,
    });
  });

  it("keeps every seed value and adds only the documented defaults", () => {
    expect(toRedactedObject(config)).toEqual({
      workers: 8,
      max_blocking: 64,
      keep_alive: "10s",
      log_level: "info",
      address: "0.0.0.0",
      port: 8000,
      core: {
        state_path: "/data/gateway-state.json",
        set_ulimit: true,
        rpc_domain: "gateway.example.com",
        run_in_dstack: true,
        auth: { enabled: true, url: "https://kms.example.com/app-auth", timeout: "5s" },
        attestation: { mode: "ca", ca_file: "/data/gateway/client-ca.pem", pccs_timeout: "10s" },
        admin: { enabled: true, port: 8001, address: "127.0.0.1", insecure_no_auth: false },
        cluster: {
          enabled: false,
          prefix: "/cvm-gateway",
          etcd: { endpoints: [], timeout: "5s" },
        },
        certbot: {
          enabled: true,
          workdir: "/data/rproxy/certs",
          acme_url: "https://acme-v02.api.letsencrypt.org/directory",
          cf_api_token: "[redacted]",
          cf_zone_id: "your_zone_id",
          auto_set_caa: true,
          domain: "*.app.example.com",
          renew_interval: "1h",
          renew_before_expiration: "10d",
          renew_timeout: "5m",
          dns_provider: "cloudflare",
          rfc2136: { tsig_algorithm: "hmac-sha256" },
          dns_check_servers: [],
          dns_check_timeout: "2m",
        },
        wg: {
          public_key: "gateway_public_key",
          private_key: "[redacted]",
          listen_port: 51820,
          ip: "10.4.0.1/16",
          reserved_net: ["10.4.0.0/27"],
          client_ip_range: "10.4.0.0/20",
          config_path: "/data/wireguard/wg-ds-gw.conf",
          interface: "wg-ds-gw",
          handshake_poll_interval: "10s",
          endpoint: "203.0.113.10:51820",
        },
        proxy: {
          cert_chain: "/data/rproxy/certs/live/cert.pem",
          cert_key: "/data/rproxy/certs/live/key.pem",
          base_domain: "app.example.com",
          engine: "node",
          listen_addr: "0.0.0.0",
          listen_port: 443,
          workers: 1,
          drain_timeout: "10m",
          agent_port: 8090,
          connect_top_n: 3,
          connect_attempt_delay: "0s",
          app_address_ns_prefix: "_dstack-app-address",
          app_address_dns_servers: [],
          app_address_cache_ttl: "1m",
          app_address_negative_ttl: "10s",
          http_redirect: true,
          http_port: 80,
          healthy_handshake_age: "5m",
          balance: "least_conn",
          proxy_protocol: false,
          max_connections_per_app: 0,
          max_connections_per_ip: 0,
          app_overrides: {},
          timeouts: {
            connect: "5s",
            handshake: "5s",
            cache_top_n: "30s",
            data_timeout_enabled: true,
            idle: "10m",
            write: "5s",
            shutdown: "5s",
            total: "5h",
            dns_resolve: "2s",
          },
        },
        sync: {
          enabled: true,
          interval: "30s",
          broadcast_interval: "10m",
          timeout: "2s",
          my_url: "https://gateway1.example.com:8001",
          bootnode: "https://bootnode.example.com:8001",
        },
        recycle: { enabled: true, interval: "5m", timeout: "10h", node_timeout: "10m" },
      },
    });
  });

  it("never prints its secrets", () => {
    const printed =
      JSON.stringify(config) +
      String(config.core.wg.private_key) +
      JSON.stringify(toRedactedObject(config));
    expect(printed).not.toContain("gateway_private_key");
    expect(printed).not.toContain("your_cloudflare_token");
    expect(config.core.wg.private_key.reveal()).toBe("gateway_private_key");
    expect(config.core.certbot.cf_api_token?.reveal()).toBe("your_cloudflare_token");
  });

  it("has a value for every key the seed file sets", () => {
    const seedKeys = [...readFileSync(SEED_TOML, "utf8").matchAll(/^([a-z_]+)\s*=/gm)].map(
      (m) => m[1],
    );
    const printed = JSON.stringify(toRedactedObject(config));
    for (const key of seedKeys) expect(printed).toContain(`"${key}":`);
    expect(seedKeys.length).toBe(59);
  });
});

describe("durations", () => {
  it.each([
    ["5s", 5_000],
    ["10m", 600_000],
    ["1h", 3_600_000],
    ["10d", 864_000_000],
    ["5h", 18_000_000],
    ["250ms", 250],
    ["1h30m", 5_400_000],
  ])("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "5", "5 s", "s", "1.5h", "-5s", "5sec", "h1"])("rejects %j", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});
