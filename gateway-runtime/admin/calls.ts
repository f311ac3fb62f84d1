/**
 * dstack-gateway's admin prpc calls (its `Admin` service in gateway_rpc.proto), by name: what
 * HTTP methods each takes and what it does. Requests and answers are dstack's prpc JSON; an
 * `Empty` request takes `{}` or no body. The per-instance calls are in instances.ts.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import { rpcError } from "../rpc/http.js";
import { INSTANCE_CALLS } from "./instances.js";
import { type RegionNodes, setNodeStatusRequest } from "./nodes.js";
import { parseRequest } from "./request.js";
import type { AdminSources } from "./sources.js";
import {
  getInfoResponse,
  globalConnections,
  metaResponse,
  nodeStatusesResponse,
  statusResponse,
} from "./status.js";

export interface CallContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly sources: AdminSources;
  /** This node's URL and its bootnode's (`core.sync`), for `Status`. */
  readonly urls: { readonly url: string; readonly bootnode: string };
  readonly log: Logger;
  /** The request as an object (request.ts), read once; `maxBytes` bounds a body. */
  request(maxBytes?: number): Promise<unknown>;
}

export interface Call {
  readonly methods: readonly ("GET" | "POST")[];
  run(c: CallContext): Promise<unknown>;
}

/** protobuf's `Empty`: any JSON object (fields it does not know are ignored, as prpc does). */
const empty = z.object({}, { error: "the request must be a JSON object" });
const getInfoRequest = z.object({
  id: z
    .string({ error: '"id" must be a string' })
    .min(1, { error: 'GetInfo needs an instance "id"' }),
});
const exitRequest = z.object({
  force: z.boolean({ error: '"force" must be true or false' }).optional(),
});

async function noArguments(c: CallContext, call: string): Promise<void> {
  parseRequest(empty, await c.request(), call);
}

function regionOf(c: CallContext): RegionNodes {
  const region = c.sources.region;
  if (!region) throw rpcError("E_RPC_UNKNOWN_METHOD", "core.cluster is not enabled here");
  return region;
}

function certbotOff(): GatewayError {
  return new GatewayError(
    "E_ADMIN_CERTBOT_DISABLED",
    "core.certbot.enabled is false: this gateway does not manage its certificate",
  );
}

/** Every call, by name; `/prpc/<name>` and `/prpc/Admin.<name>` both reach it. */
export const CALLS: Readonly<Record<string, Call>> = {
  Status: {
    methods: ["GET", "POST"],
    async run(c) {
      await noArguments(c, "Status");
      return statusResponse(await c.sources.view(), c.urls, c.sources.region);
    },
  },
  GetInfo: {
    methods: ["GET", "POST"],
    async run(c) {
      const { id } = parseRequest(getInfoRequest, await c.request(), "GetInfo");
      return getInfoResponse(await c.sources.view(), id);
    },
  },
  GetMeta: {
    methods: ["GET", "POST"],
    async run(c) {
      await noArguments(c, "GetMeta");
      return metaResponse(await c.sources.view());
    },
  },
  GetGlobalConnections: {
    methods: ["GET", "POST"],
    async run(c) {
      await noArguments(c, "GetGlobalConnections");
      return globalConnections(await c.sources.view(), c.sources.region);
    },
  },
  Exit: {
    methods: ["POST"],
    async run(c) {
      const { force = false } = parseRequest(exitRequest, await c.request(), "Exit");
      const exit = c.sources.exit;
      if (!exit) throw rpcError("E_RPC_UNKNOWN_METHOD", "Exit is not available here");
      c.log.warn({ force }, "admin: exiting");
      // After the answer is out: the caller learns the call was taken, then the process goes.
      c.res.once("finish", () => exit(force));
      return {};
    },
  },
  ReloadCert: {
    methods: ["POST"],
    async run(c) {
      await noArguments(c, "ReloadCert");
      c.log.info("admin: reloading the certificate");
      await c.sources.reloadCertificate();
      return {};
    },
  },
  RenewCert: {
    methods: ["POST"],
    async run(c) {
      await noArguments(c, "RenewCert");
      const renew = c.sources.renewCertificate;
      if (!renew) throw certbotOff();
      c.log.info("admin: renewing the certificate now");
      const outcome = await renew();
      if (outcome.action === "failed" || outcome.action === "rate-limited") throw outcome.error;
      return { renewed: outcome.action === "renewed" };
    },
  },
  SetCaa: {
    methods: ["POST"],
    async run(c) {
      await noArguments(c, "SetCaa");
      const setCaa = c.sources.setCaa;
      if (!setCaa) throw certbotOff();
      c.log.info("admin: writing the CAA records");
      await setCaa();
      return {};
    },
  },
  SetNodeStatus: {
    methods: ["POST"],
    async run(c) {
      const region = regionOf(c);
      const { status, ...target } = parseRequest(
        setNodeStatusRequest,
        await c.request(),
        "SetNodeStatus",
      );
      const name = region.resolve(target as { id: number } | { name: string });
      c.log.info({ node: name, status }, "admin: setting a gateway node's status");
      await region.setStatus(name, status);
      return {};
    },
  },
  GetNodeStatuses: {
    methods: ["GET", "POST"],
    async run(c) {
      await noArguments(c, "GetNodeStatuses");
      return nodeStatusesResponse(regionOf(c));
    },
  },
  ...INSTANCE_CALLS,
};
