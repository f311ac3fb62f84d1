import { z } from "zod";
import { field, section } from "./fields.js";

/**
 * The multi-host keys: dstack's `core.sync` (its own replication protocol, accepted so the seed
 * loads, and doing nothing here) and `core.cluster`, this gateway's way for the hosts of a region
 * to share registrations: etcd.
 */

const added = true as const;

export const NO_SYNC =
  "the hosts of a region share registrations through etcd (`core.cluster`), not through dstack's node-to-node sync";

// Off by default, and doing nothing either way: `core.cluster` is what shares a region's state.
export const sync = section({
  enabled: field.bool(false, {
    doc: "dstack: run as one node of a gateway cluster",
    noEffect: NO_SYNC,
  }),
  interval: field.duration("30s", { doc: "dstack: state sync period", noEffect: NO_SYNC }),
  broadcast_interval: field.duration("10m", {
    doc: "dstack: full state broadcast period",
    noEffect: NO_SYNC,
  }),
  timeout: field.duration("2s", { doc: "dstack: bound on one sync request", noEffect: NO_SYNC }),
  my_url: field.optional.url({
    doc: "dstack: this node's admin URL as peers reach it",
    noEffect: `${NO_SYNC}; only echoed as \`url\` in Admin.Status`,
  }),
  bootnode: field.optional.url({
    doc: "dstack: a node to join the cluster through",
    noEffect: `${NO_SYNC}; only echoed as \`bootnode_url\` in Admin.Status`,
  }),
});

// Off by default: a region of one host keeps its registrations in `core.state_path`.
const clusterFields = {
  enabled: field.bool(false, {
    doc: "Share registrations and IP allocation with the region's other gateway hosts through etcd, instead of `core.state_path`, and one certificate (one host renews at a time)",
    added,
  }),
  node_name: field.optional.string({
    doc: "This host's name in the region, in its logs (default: the host name)",
    added,
  }),
  prefix: field.string("/cvm-gateway", {
    doc: "etcd key prefix of the region's state: `<prefix>/instances/<id>`, `<prefix>/ips/<ip>`, `<prefix>/keys/<key>`; with `core.certbot`, `<prefix>/locks/certbot` and `<prefix>/certs/<base_domain>/{pair,ledger}`",
    added,
  }),
  etcd: section({
    endpoints: field.endpointList([], {
      doc: "etcd members, `host:port`; required when `enabled`. In a stack, left empty: the Pulumi program runs a member on each of the region's hosts and fills them in",
      added,
    }),
    ca_file: field.optional.string({
      doc: "PEM CA of the etcd members' certificates; unset means plain connections",
      added,
    }),
    server_name: field.optional.string({
      doc: "The name checked in the etcd members' certificates instead of each endpoint's host; needed for TLS to members listed by IP address, which a TLS client cannot send as a server name. The members the program runs carry `etcd.gateway.internal`, and it sets this",
      added,
    }),
    cert_file: field.optional.string({ doc: "PEM client certificate for etcd", added }),
    key_file: field.optional.string({ doc: "PEM key of `cert_file`", added }),
    timeout: field.duration("5s", {
      doc: "Bound on one etcd request; while etcd has no quorum a registration fails after a few of these",
      added,
    }),
  }),
};

type ClusterValue = { enabled: boolean; etcd: { cert_file?: unknown; key_file?: unknown } };

function pairedClientFiles(c: ClusterValue, ctx: z.RefinementCtx): void {
  if ((c.etcd.cert_file === undefined) !== (c.etcd.key_file === undefined))
    ctx.addIssue({
      code: "custom",
      path: ["etcd", "cert_file"],
      message: "cert_file and key_file go together",
    });
}

/** On a host: with `enabled`, the endpoints are required (the gateway must know where etcd is). */
export const cluster = z
  .strictObject(clusterFields)
  .superRefine((c, ctx) => {
    if (c.enabled && c.etcd.endpoints.length === 0)
      ctx.addIssue({
        code: "custom",
        path: ["etcd", "endpoints"],
        message: "required when core.cluster.enabled is true",
      });
    pairedClientFiles(c, ctx);
  })
  .prefault({});

/**
 * In a stack: `enabled` without endpoints asks the Pulumi program to run etcd on the region's
 * hosts (it writes each host's endpoints), and `node_name` is each host's name in
 * `gateway:hosts`, so one value for the whole stack is refused rather than given to every host.
 */
export const clusterInStack = z
  .strictObject({ ...clusterFields, node_name: field.generated() })
  .superRefine(pairedClientFiles)
  .prefault({});
