import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { caaNames } from "../gateway-runtime/config/names.js";
import { appAddressRecord, caaIssuerFor, caaValue, nameSlug } from "./dns-records.js";

/** A gateway host as DNS sees it. */
export interface DnsHost {
  /** Short host name, used in resource names. */
  readonly name: string;
  readonly ipv4: string;
  /** When set, AAAA records are written too. */
  readonly ipv6?: string | undefined;
}

/** A custom domain served by passthrough: `_dstack-app-address.<domain>` TXT = `<app-id>:<port>`. */
export interface CustomDomain {
  readonly domain: string;
  readonly appId: string;
  readonly port: number;
  /** Cloudflare zone id of the domain's zone; or give `zone`. */
  readonly zoneId?: string | undefined;
  /** Name of the domain's Cloudflare zone, looked up by name. */
  readonly zone?: string | undefined;
}

export interface GatewayDnsArgs {
  /** Cloudflare zone id holding the base domain and the RPC domain; or give `zoneName`. */
  zoneId?: pulumi.Input<string> | undefined;
  /** Name of that zone, looked up with `cloudflare.getZoneOutput`. */
  zoneName?: pulumi.Input<string> | undefined;
  /** `core.proxy.base_domain`: apex and wildcard records point at the hosts. Not an Input: with `rpcDomain` it decides where CAA records go. */
  baseDomain: string;
  /** `core.rpc_domain`: where CVMs register; outside the base domain it gets CAA records of its own. */
  rpcDomain: string;
  /** The region's hosts; one record per host and name (round robin). Not an Input: it shapes the records. */
  hosts: readonly DnsHost[];
  /** The ACME account URL; when given, CAA `issue` and `issuewild` pin issuance to it and to dns-01. */
  accountUrl?: pulumi.Input<string> | undefined;
  /**
   * The ACME directory URL the account lives at.
   * @default "https://acme-v02.api.letsencrypt.org/directory"
   */
  acmeDirectoryUrl?: pulumi.Input<string> | undefined;
  /**
   * CAA issuer domain of the CA.
   * @default derived from `acmeDirectoryUrl` ("letsencrypt.org" for Let's Encrypt)
   */
  caaIssuer?: pulumi.Input<string> | undefined;
  /** Custom domains, each TXT in its own zone. Not an Input: one record each. @default [] */
  customDomains?: readonly CustomDomain[] | undefined;
  /** `core.proxy.app_address_ns_prefix`; not an Input: it names records. @default "_dstack-app-address" */
  appAddressPrefix?: string | undefined;
  /** Record TTL in seconds; 1 means automatic. @default 1 */
  ttl?: pulumi.Input<number> | undefined;
}

const COMMENT = "managed by Pulumi (cvm-tls-gateway)";

/** The region's DNS in Cloudflare: A/AAAA for the base, wildcard and RPC names, CAA, custom-domain TXT. */
export class GatewayDns extends pulumi.ComponentResource {
  /** Every record, by resource name. */
  readonly records: Record<string, cloudflare.DnsRecord>;

  constructor(name: string, args: GatewayDnsArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("gateway:index:GatewayDns", name, {}, opts);
    const ttl = args.ttl ?? 1;
    const records: Record<string, cloudflare.DnsRecord> = {};
    const zones = new Map<string, pulumi.Output<string>>();
    const zoneByName = (zone: pulumi.Input<string>) => {
      const key = typeof zone === "string" ? zone : "(base zone)";
      const known = zones.get(key);
      if (known) return known;
      const id = cloudflare.getZoneOutput({ filter: { name: zone } }, { parent: this }).id;
      zones.set(key, id);
      return id;
    };
    const add = (suffix: string, record: Omit<cloudflare.DnsRecordArgs, "ttl" | "comment">) => {
      records[`${name}-${suffix}`] = new cloudflare.DnsRecord(
        `${name}-${suffix}`,
        { ...record, ttl, comment: COMMENT },
        { parent: this },
      );
    };

    let zoneId: pulumi.Input<string>;
    if (args.zoneId !== undefined) zoneId = args.zoneId;
    else if (args.zoneName !== undefined) zoneId = zoneByName(args.zoneName);
    else throw new Error(`GatewayDns ${name}: give zoneId or zoneName`);

    const names = [
      ["apex", args.baseDomain],
      ["wildcard", pulumi.interpolate`*.${args.baseDomain}`],
      ["rpc", args.rpcDomain],
    ] as const;
    for (const host of args.hosts) {
      for (const [label, fqdn] of names) {
        add(`${label}-a-${host.name}`, {
          zoneId,
          name: fqdn,
          type: "A",
          content: host.ipv4,
          proxied: false,
        });
        if (host.ipv6 !== undefined) {
          add(`${label}-aaaa-${host.name}`, {
            zoneId,
            name: fqdn,
            type: "AAAA",
            content: host.ipv6,
            proxied: false,
          });
        }
      }
    }

    if (args.accountUrl !== undefined) {
      const directory = args.acmeDirectoryUrl ?? "https://acme-v02.api.letsencrypt.org/directory";
      const issuer = args.caaIssuer ?? pulumi.output(directory).apply(caaIssuerFor);
      const value = pulumi
        .all([issuer, args.accountUrl])
        .apply(([caa, account]) => caaValue(caa, account));
      // The certificate names rpc_domain too when it is outside the base domain, and a CA looks
      // CAA up from each name towards the root: the base domain's records do not reach it.
      const [, ...outside] = caaNames(args.baseDomain, args.rpcDomain);
      const pinned: [string, string][] = [
        ["caa", args.baseDomain],
        ...outside.map((n): [string, string] => ["caa-rpc", n]),
      ];
      for (const [prefix, caaName] of pinned) {
        for (const tag of ["issue", "issuewild"] as const) {
          add(`${prefix}-${tag}`, {
            zoneId,
            name: caaName,
            type: "CAA",
            data: { flags: 0, tag, value },
          });
        }
      }
    }

    const prefix = args.appAddressPrefix ?? "_dstack-app-address";
    for (const custom of args.customDomains ?? []) {
      let customZone: pulumi.Input<string>;
      if (custom.zoneId !== undefined) customZone = custom.zoneId;
      else if (custom.zone !== undefined) customZone = zoneByName(custom.zone);
      else
        throw new Error(`GatewayDns ${name}: custom domain ${custom.domain} needs zoneId or zone`);
      const record = appAddressRecord(prefix, custom.domain, custom.appId, custom.port);
      add(`app-${nameSlug(custom.domain)}`, {
        zoneId: customZone,
        name: record.name,
        type: "TXT",
        content: record.content,
      });
    }

    this.records = records;
    this.registerOutputs({ records });
  }
}
