import type { z } from "zod";
import { certificateNames, within } from "./names.js";
import { wgPublicKey } from "../keys/wireguard.js";
import { type Cidr, cidrContains, cidrWithin, formatIpv4, parseCidr } from "./net.js";
import { isSecret } from "./secret.js";

/**
 * Checks that span several keys. They run even when some keys failed their own validation
 * (so every error is reported in one pass), hence each check reads values defensively and
 * skips when a key it needs is itself invalid.
 */
type Ctx = z.RefinementCtx;
type Obj = Record<string, unknown>;

const obj = (v: unknown): Obj =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {};
const num = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isInteger(v) ? v : undefined;
const txt = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const cidr = (v: unknown): Cidr | undefined => (typeof v === "string" ? parseCidr(v) : undefined);

const isLoopback = (ip: string): boolean => ip === "::1" || /^127\./.test(ip);

function issue(ctx: Ctx, path: string, message: string, input?: unknown): void {
  ctx.addIssue({ code: "custom", path: path.split("."), message, input });
}

export function checkConfig(value: unknown, ctx: Ctx): void {
  const root = obj(value);
  const core = obj(root.core);
  checkWireGuardNetwork(obj(core.wg), ctx);
  checkWireGuardKeys(obj(core.wg), ctx);
  checkPorts(root, core, ctx);
  checkRequiredWhenEnabled(core, ctx);
  checkCertificateDomain(core, ctx);
  checkRpcDomainZone(core, ctx);
}

function checkWireGuardNetwork(wg: Obj, ctx: Ctx): void {
  const ip = cidr(wg.ip);
  if (!ip) return;
  if (ip.prefix < 31 && (ip.address === ip.network || ip.address === ip.broadcast)) {
    issue(
      ctx,
      "core.wg.ip",
      "the gateway address must not be the network or broadcast address",
      wg.ip,
    );
  }
  const range = cidr(wg.client_ip_range);
  if (range && !cidrWithin(range, ip)) {
    issue(
      ctx,
      "core.wg.client_ip_range",
      `must lie inside the WireGuard network ${formatIpv4(ip.network)}/${ip.prefix}`,
      wg.client_ip_range,
    );
  }
  if (Array.isArray(wg.reserved_net)) {
    const reserved = wg.reserved_net.map(cidr);
    if (
      reserved.every((r) => r !== undefined) &&
      !reserved.some((r) => cidrContains(r, ip.address))
    ) {
      issue(
        ctx,
        "core.wg.reserved_net",
        `must contain the gateway IP ${formatIpv4(ip.address)} (core.wg.ip)`,
        wg.reserved_net,
      );
    }
  }
}

function checkWireGuardKeys(wg: Obj, ctx: Ctx): void {
  const pub = txt(wg.public_key);
  if (!pub || !isSecret(wg.private_key) || wg.private_key.encrypted) return;
  const derived = wgPublicKey(wg.private_key.reveal());
  if (derived !== undefined && derived !== pub) {
    issue(
      ctx,
      "core.wg.public_key",
      `does not match core.wg.private_key, whose public key is ${derived}`,
      pub,
    );
  }
}

function checkPorts(root: Obj, core: Obj, ctx: Ctx): void {
  const admin = obj(core.admin);
  const tcp: [string, number | undefined][] = [
    ["port", num(root.port)],
    ["core.proxy.listen_port", num(obj(core.proxy).listen_port)],
    ["core.admin.port", admin.enabled === false ? undefined : num(admin.port)],
    [
      "core.proxy.http_port",
      obj(core.proxy).http_redirect === false ? undefined : num(obj(core.proxy).http_port),
    ],
  ];
  const seen = new Map<number, string>();
  for (const [path, port] of tcp) {
    if (port === undefined) continue;
    const other = seen.get(port);
    if (other) issue(ctx, path, `port ${port} is also used by ${other}`, port);
    else seen.set(port, path);
  }
}

function requireKeys(ctx: Ctx, section: Obj, base: string, keys: string[], why: string): void {
  for (const key of keys) {
    if (section[key] === undefined) issue(ctx, `${base}.${key}`, `is required when ${why}`);
  }
}

function checkRequiredWhenEnabled(core: Obj, ctx: Ctx): void {
  const attestation = obj(core.attestation);
  if (attestation.mode === "tdx") {
    requireKeys(
      ctx,
      attestation,
      "core.attestation",
      ["pccs_url"],
      'core.attestation.mode is "tdx"',
    );
  }
  const auth = obj(core.auth);
  if (auth.enabled !== false)
    requireKeys(ctx, auth, "core.auth", ["url"], "core.auth.enabled is true");
  const admin = obj(core.admin);
  const adminAddress = txt(admin.address);
  const exposed =
    adminAddress !== undefined && !isLoopback(adminAddress) && admin.socket === undefined;
  if (admin.enabled !== false && admin.insecure_no_auth === true && exposed) {
    issue(
      ctx,
      "core.admin.insecure_no_auth",
      `must not be true while core.admin.address (${adminAddress}) is not a loopback address`,
      true,
    );
  }
  // core.sync has no effect (schema.ts), so nothing in it is required, whatever `enabled` says.
  const certbot = obj(core.certbot);
  if ((certbot.account_key === undefined) !== (certbot.account_url === undefined)) {
    const missing = certbot.account_key === undefined ? "account_key" : "account_url";
    const present = missing === "account_key" ? "account_url" : "account_key";
    issue(ctx, `core.certbot.${missing}`, `is required when core.certbot.${present} is set`);
  }
  if (certbot.enabled === false) return;
  checkLivePaths(certbot, obj(core.proxy), ctx);
  const provider = certbot.dns_provider ?? "cloudflare";
  if (provider === "cloudflare") {
    requireKeys(
      ctx,
      certbot,
      "core.certbot",
      ["cf_api_token", "cf_zone_id"],
      'core.certbot.dns_provider is "cloudflare"',
    );
  } else if (provider === "rfc2136") {
    const why = 'core.certbot.dns_provider is "rfc2136"';
    requireKeys(
      ctx,
      obj(certbot.rfc2136),
      "core.certbot.rfc2136",
      ["server", "tsig_key_name", "tsig_secret"],
      why,
    );
  }
}

/**
 * `core.certbot.domain` has no effect (the name follows base_domain), so it may be absent; a
 * different name set there means the operator expects a certificate this gateway never gets.
 */
function checkCertificateDomain(core: Obj, ctx: Ctx): void {
  const certbot = obj(core.certbot);
  const domain = txt(certbot.domain);
  const base = txt(obj(core.proxy).base_domain);
  if (certbot.enabled === false || domain === undefined || base === undefined) return;
  if (domain !== `*.${base}`) {
    issue(
      ctx,
      "core.certbot.domain",
      `must be "*.${base}" to cover every app under core.proxy.base_domain`,
      domain,
    );
  }
}

/**
 * A `core.rpc_domain` outside `*.<base_domain>` is one more name of the certificate
 * (certs/names.ts), so its DNS-01 challenge goes through the same RFC 2136 zone: that zone must
 * hold it. (Cloudflare's zone is an id, not a name: a wrong one fails at the first order.)
 */
function checkRpcDomainZone(core: Obj, ctx: Ctx): void {
  const certbot = obj(core.certbot);
  const base = txt(obj(core.proxy).base_domain);
  const rpc = txt(core.rpc_domain);
  if (certbot.enabled === false || certbot.dns_provider !== "rfc2136") return;
  if (base === undefined || rpc === undefined) return;
  if (certificateNames(base, rpc).length === 2) return;
  const zone = txt(obj(certbot.rfc2136).zone) ?? base;
  if (within(rpc, zone) && within(base, zone)) return;
  issue(
    ctx,
    "core.certbot.rfc2136.zone",
    `must be a zone holding both core.proxy.base_domain and core.rpc_domain ("${rpc}" is not under "*.${base}", so the certificate names it and its DNS-01 challenge is written in this zone)`,
    zone,
  );
}

/** The certificate manager writes `<workdir>/live/`; the proxy must serve exactly those files. */
function checkLivePaths(certbot: Obj, proxy: Obj, ctx: Ctx): void {
  const workdir = txt(certbot.workdir);
  if (workdir === undefined) return;
  const live = workdir.replace(/\/+$/, "");
  for (const [key, file] of [
    ["cert_chain", "cert.pem"],
    ["cert_key", "key.pem"],
  ] as const) {
    const expected = `${live}/live/${file}`;
    const actual = txt(proxy[key]);
    if (actual !== undefined && actual !== expected) {
      issue(
        ctx,
        `core.proxy.${key}`,
        `must be "${expected}" while core.certbot.enabled is true (the certificate manager writes there)`,
        actual,
      );
    }
  }
}
