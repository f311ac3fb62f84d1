import { z } from "zod";
import { checkConfig } from "./checks.js";
import { cluster, clusterInStack, NO_SYNC, sync } from "./cluster.js";
import { field, section } from "./fields.js";

const added = true as const;

// Why a dstack key does nothing here (`noEffect`): accepted so dstack's gateway.toml loads
// verbatim, warned about at start and marked in the README, never silently ignored.
const IN_TEE =
  "dstack runs its gateway in a CVM (a TEE) beside a guest agent; this gateway runs on a host and asks no guest agent for anything";
const ROCKET =
  "a setting of dstack's Rust HTTP server (Rocket); this runtime serves the RPC on Node's event loop, and its proxy processes are `core.proxy.workers`";

const auth = section({
  enabled: field.bool(true, { doc: "Ask `url` whether an app may register before admitting it" }),
  url: field.optional.url({
    doc: "Authorization endpoint (KmsAuth); required when `enabled`. Only a 2xx answer admits",
  }),
  timeout: field.duration("5s", { doc: "Bound on one authorization request; a timeout denies" }),
});

const admin = section({
  enabled: field.bool(true, { doc: "Serve the admin API and metrics" }),
  port: field.port(8001, { doc: "Admin API port" }),
  address: field.ip("127.0.0.1", { doc: "Admin API listen address; keep it local", added }),
  auth_token: field.optional.secret({
    doc: "Token every admin request must carry (`Authorization: Bearer` or `X-Admin-Token`), at least 16 characters; or `auth_token_file`, or the `GATEWAY_ADMIN_TOKEN` environment variable (one of the three)",
  }),
  auth_token_file: field.optional.string({
    doc: "File whose first line is the admin token, so it need not sit in the config",
    added,
  }),
  htpasswd_file: field.optional.string({
    doc: "htpasswd file of users allowed with HTTP Basic auth; bcrypt entries only (`htpasswd -B`)",
    added,
  }),
  insecure_no_auth: field.bool(false, {
    doc: "Serve the admin API without authentication, with a warning at every start. Without it the gateway refuses to start unless a token or `htpasswd_file` is set",
    added,
  }),
  socket: field.optional.string({
    doc: "Listen on this Unix socket (mode 0600) instead of `address:port`",
    added,
  }),
});

const rfc2136 = section({
  server: field.optional.endpoint({ doc: "DNS server taking RFC 2136 updates, `ip:port`", added }),
  zone: field.optional.dnsName(1, {
    doc: "Zone to update (defaults to the base domain); it must hold `rpc_domain` too when that is outside `*.<base_domain>`",
    added,
  }),
  tsig_key_name: field.optional.string({ doc: "TSIG key name", added }),
  tsig_algorithm: field.choice(["hmac-sha256", "hmac-sha512"], "hmac-sha256", {
    doc: "TSIG algorithm",
    added,
  }),
  tsig_secret: field.optional.secret({ doc: "TSIG key, base64", added }),
});

const certbotFields = {
  enabled: field.bool(true, { doc: "Obtain and renew the wildcard certificate with ACME DNS-01" }),
  workdir: field.path("/data/rproxy/certs", { doc: "Account, `live/` certificate and backups" }),
  acme_url: field.url("https://acme-v02.api.letsencrypt.org/directory", {
    doc: "ACME directory URL",
  }),
  cf_api_token: field.optional.secret({
    doc: "Cloudflare API token (DNS edit on the zone); required for the cloudflare provider",
  }),
  cf_zone_id: field.optional.string({
    doc: "Cloudflare zone id; required for the cloudflare provider",
  }),
  auto_set_caa: field.bool(true, {
    doc: "Write CAA records pinning issuance to this ACME account and dns-01",
  }),
  domain: field.optional.string({
    doc: "dstack's certificate name; if set, it must be `*.<core.proxy.base_domain>` (checked, not used)",
    noEffect:
      "the certificate is always for `*.<core.proxy.base_domain>` and `<core.proxy.base_domain>`",
  }),
  renew_interval: field.duration("1h", { doc: "How often to check whether to renew" }),
  renew_before_expiration: field.duration("10d", {
    doc: "Renew when the certificate expires sooner than this",
  }),
  renew_timeout: field.duration("5m", { doc: "Give up one renewal attempt after this" }),
  dns_provider: field.choice(["cloudflare", "rfc2136"], "cloudflare", {
    doc: "Where DNS-01 TXT and CAA records are written",
    added,
  }),
  rfc2136,
  acme_ca_file: field.optional.string({
    doc: "PEM file of extra CAs trusted for `acme_url` (a private CA such as pebble)",
    added,
  }),
  contact_email: field.optional.string({
    doc: "Contact address registered with a new ACME account",
    added,
  }),
  dns_check_servers: field.endpointList([], {
    doc: "DNS servers (`ip:port`) asked whether a challenge TXT is visible; empty: the rfc2136 server, or the zone's NS",
    added,
  }),
  dns_check_timeout: field.duration("2m", {
    doc: "Give up waiting for a challenge TXT to be visible after this",
    added,
  }),
};

const wgFields = {
  listen_port: field.port(51820, { doc: "WireGuard UDP port" }),
  ip: field.cidr("10.4.0.1/16", { doc: "Gateway address and prefix of the WireGuard network" }),
  reserved_net: field.cidrList(["10.4.0.0/27"], {
    doc: "Ranges never given to CVMs; must contain the gateway IP",
  }),
  client_ip_range: field.cidr("10.4.0.0/20", {
    doc: "Range CVM addresses come from; inside the network of `ip`",
  }),
  config_path: field.path("/data/wireguard/wg-ds-gw.conf", {
    doc: "Rendered WireGuard config (mode 0600)",
  }),
  interface: field.string("wg-ds-gw", { doc: "WireGuard interface name" }),
  handshake_poll_interval: field.duration("10s", {
    doc: "How often WireGuard handshakes are read to update instance health",
    added,
  }),
};

const timeouts = section({
  connect: field.duration("5s", { doc: "Bound on connecting to a CVM (all raced candidates)" }),
  handshake: field.duration("5s", {
    doc: "Bound on reading the ClientHello and the TLS handshake",
  }),
  cache_top_n: field.duration("30s", { doc: "How long the candidate instance list is cached" }),
  data_timeout_enabled: field.bool(true, { doc: "Enforce `idle` and `write`" }),
  idle: field.duration("10m", { doc: "Close when neither side sent data for this long" }),
  write: field.duration("5s", { doc: "Close when a write stays blocked this long" }),
  shutdown: field.duration("5s", { doc: "Bound on the half-closed phase after one side ends" }),
  total: field.duration("5h", { doc: "Maximum life of one connection" }),
  dns_resolve: field.duration("2s", { doc: "Bound on one custom-domain TXT lookup", added }),
});

const appOverride = z.strictObject({
  proxy_protocol: z.boolean({ error: "expected true or false" }).optional(),
  max_connections: z
    .number({ error: "expected an integer 0-1000000" })
    .int()
    .min(0)
    .max(1_000_000)
    .optional(),
});

const proxy = section({
  cert_chain: field.path("/data/rproxy/certs/live/cert.pem", {
    doc: "Certificate chain served on `listen_port`",
  }),
  cert_key: field.path("/data/rproxy/certs/live/key.pem", { doc: "Private key of `cert_chain`" }),
  base_domain: field.required.dnsName(2, {
    doc: "Apps are `<app-id>[-<port>][s|g].<base_domain>`",
  }),
  engine: field.choice(["node", "haproxy"], "node", {
    doc: "What moves the bytes: `node`, this runtime's own data plane; `haproxy`, HAProxy (Debian's package, `/usr/sbin/haproxy`) configured and updated by the runtime, with what HAProxy cannot decide (unknown names, the first connection to a custom domain, the gateway's own names) handed to the Node data plane over a Unix socket",
    added,
  }),
  listen_addr: field.ip("0.0.0.0", { doc: "Address of the TLS listener" }),
  listen_port: field.port(443, { doc: "Port of the TLS listener" }),
  workers: field.int(1, 1, 64, {
    doc: "Processes serving the TLS and redirect ports (one core each); above 1, per-app and per-IP limits apply per process",
    added,
  }),
  drain_timeout: field.duration("10m", {
    doc: "After a hand-over (a deploy, `systemctl restart`/`reload`, the main process killed) the old proxy processes keep relaying their open connections for at most this long, then cut the rest. 10m: `timeouts.idle`, so an idle connection would be gone by then anyway, and deploys minutes apart leave only a few old generations",
    added,
  }),
  agent_port: field.port(8090, {
    doc: "Port of the agent inside each CVM (told to CVMs at registration)",
  }),
  connect_top_n: field.int(3, 1, 32, { doc: "Healthy instances raced per connection" }),
  connect_attempt_delay: field.duration("0s", {
    doc: "0s: dial the `connect_top_n` candidates at once. Otherwise dial them in turn, the next when the last failed or has not answered within this delay (RFC 8305; 250ms there)",
    added,
  }),
  app_address_ns_prefix: field.string("_dstack-app-address", {
    doc: "TXT prefix for custom domains: `<prefix>.<domain>` = `<app-id>:<port>`; without one, `<prefix>-wildcard.<parent>` serves every name one label below `<parent>`",
  }),
  app_address_dns_servers: field.endpointList([], {
    doc: "DNS servers (`ip:port`) for custom-domain TXT lookups, asked in turn (UDP, then TCP for a truncated answer); empty: the nameservers of /etc/resolv.conf",
    added,
  }),
  app_address_cache_ttl: field.duration("1m", {
    doc: "The longest a custom-domain TXT answer is reused; a record with a shorter TTL is reused for its TTL",
    added,
  }),
  app_address_negative_ttl: field.duration("10s", {
    doc: "The longest a missing or malformed TXT answer is reused; a shorter negative TTL (the SOA's) or record TTL decides below it",
    added,
  }),
  http_redirect: field.bool(true, {
    doc: "Answer plain HTTP on `http_port` with a redirect to https",
    added,
  }),
  http_port: field.port(80, { doc: "Port of the http-to-https redirect", added }),
  healthy_handshake_age: field.duration("5m", {
    doc: "An instance is healthy while its latest WireGuard handshake is younger than this",
    added,
  }),
  balance: field.choice(["least_conn", "random", "round_robin", "ip_hash"], "least_conn", {
    doc: "How connections spread over an app's healthy instances",
    added,
  }),
  proxy_protocol: field.bool(false, {
    doc: "Send a PROXY protocol v2 header (client address) to backends",
    added,
  }),
  max_connections_per_app: field.int(0, 0, 1_000_000, {
    doc: "Open connections allowed per app; 0: no limit",
    added,
  }),
  max_connections_per_ip: field.int(0, 0, 1_000_000, {
    doc: "Open connections allowed per client IP; 0: no limit",
    added,
  }),
  app_overrides: field.table(appOverride, {
    doc: "Per app id: `{ proxy_protocol, max_connections }` overriding the gateway-wide settings",
    added,
  }),
  timeouts,
});

const recycle = section({
  enabled: field.bool(true, { doc: "Remove instances whose WireGuard peer went quiet" }),
  interval: field.duration("5m", { doc: "How often to look for dead instances" }),
  timeout: field.duration("10h", {
    doc: "No handshake for this long: the instance is removed and its IP freed",
  }),
  node_timeout: field.duration("10m", {
    doc: "dstack: a gateway node silent this long leaves the cluster",
    noEffect: NO_SYNC,
  }),
});

const attestation = section({
  mode: field.choice(["ca", "tdx"], "ca", {
    doc: "How CVM client certificates are verified: `ca` trusts `ca_file` (KMS-issued RA-TLS certificates, or a CA of your own for development); `tdx` verifies the TDX quote inside the certificate",
    added,
  }),
  ca_file: field.path("/data/gateway/client-ca.pem", {
    doc: "PEM CA bundle CVM client certificates must chain to (mode `ca`)",
    added,
  }),
  pccs_url: field.optional.url({
    doc: "PCCS serving DCAP collateral; required for mode `tdx`",
    added,
  }),
  pccs_timeout: field.duration("10s", { doc: "Bound on one PCCS request", added }),
});

/**
 * The keys the Pulumi program generates for each host: the host's WireGuard identity and
 * endpoint, and the region's ACME account. With `core.cluster` (cluster.ts: `node_name` is
 * generated, `etcd.endpoints` may be left to the program) they are the only difference between
 * what a stack sets (the operator's schema) and what a host runs (the host's schema);
 * everything else below is one definition that both schemas share.
 */
const onHost = {
  wg: {
    public_key: field.required.string({ doc: "This gateway's WireGuard public key (base64)" }),
    private_key: field.required.secret({ doc: "This gateway's WireGuard private key (base64)" }),
    endpoint: field.required.endpoint({ doc: "Public `host:port` CVMs use to reach this gateway" }),
  },
  certbot: {
    account_url: field.optional.url({
      doc: "Existing ACME account URL (the Pulumi program creates it); else one is created in `workdir`",
      added,
    }),
    account_key: field.optional.secret({ doc: "PEM private key of `account_url`", added }),
  },
};

/** In a stack they are refused, so a value the program would overwrite is never silently dropped. */
const inStack = {
  wg: {
    public_key: field.generated(),
    private_key: field.generated(),
    endpoint: field.generated(),
  },
  certbot: { account_url: field.generated(), account_key: field.generated() },
};

const coreHead = {
  state_path: field.path("/data/gateway-state.json", {
    doc: "Registrations and IP allocations (atomic writes)",
  }),
  set_ulimit: field.bool(true, {
    doc: "dstack: raise the soft open-files limit to the hard limit",
    noEffect:
      "this runtime leaves its limits alone; the systemd unit the program installs sets `LimitNOFILE`",
  }),
  rpc_domain: field.required.dnsName(2, { doc: "Name CVMs use for the registration RPC" }),
  run_in_dstack: field.bool(true, {
    doc: "dstack: the gateway runs as a dstack app and takes its keys from the guest agent",
    noEffect: IN_TEE,
  }),
  auth,
  attestation,
  admin,
};

const coreTail = { proxy, sync, cluster, recycle };

const top = {
  workers: field.int(8, 1, 1024, { doc: "dstack: Rocket worker threads", noEffect: ROCKET }),
  max_blocking: field.int(64, 1, 65536, {
    doc: "dstack: Rocket blocking tasks",
    noEffect: ROCKET,
  }),
  keep_alive: field.durationOrSeconds("10s", {
    doc: "HTTP keep-alive of the RPC server; a bare number means seconds, as in dstack",
  }),
  log_level: field.choice(["trace", "debug", "info", "warn", "error"], "info", {
    doc: "Log level",
  }),
  address: field.ip("0.0.0.0", { doc: "Listen address of the RPC server", added }),
  port: field.port(8000, { doc: "Port of the RPC server (CVM registration)" }),
};

/** What a gateway host runs: the keys of dstack's gateway.toml plus documented additions. */
export const gatewayConfigSchema = z
  .strictObject({
    ...top,
    core: section({
      ...coreHead,
      certbot: section({ ...certbotFields, ...onHost.certbot }),
      wg: section({
        public_key: onHost.wg.public_key,
        private_key: onHost.wg.private_key,
        ...wgFields,
        endpoint: onHost.wg.endpoint,
      }),
      ...coreTail,
    }),
  })
  .superRefine(checkConfig, { when: () => true });

/** What an operator writes in a stack's `gateway:config`: the same, less the generated keys. */
export const operatorConfigSchema = z
  .strictObject({
    ...top,
    core: section({
      ...coreHead,
      certbot: section({ ...certbotFields, ...inStack.certbot }),
      wg: section({
        public_key: inStack.wg.public_key,
        private_key: inStack.wg.private_key,
        ...wgFields,
        endpoint: inStack.wg.endpoint,
      }),
      ...coreTail,
      cluster: clusterInStack,
    }),
  })
  .superRefine(checkConfig, { when: () => true });
