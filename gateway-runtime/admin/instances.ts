/**
 * The admin calls on one instance: dstack's port policy calls and `GetInstanceHandshakes`, and
 * two dstack lacks. `SetInstanceReady {instance_id, ready}` takes an instance out of its app's
 * rotation (`ready: false`) and puts it back (`ready: true`); the name and the meaning are
 * dstack#1078's, so one call does the same on either gateway, and one call with a boolean
 * cannot be half undone. `RemoveInstance {instance_id}` removes a stale instance at once
 * (dstack#682 proposed it as `ForceRemoveInstance`, also accepted), freeing its address and
 * its WireGuard peer.
 */
import { z } from "zod";
import { nodeId } from "../cluster/index.js";
import { rpcError } from "../rpc/http.js";
import { portPolicySchema } from "../rpc/wire.js";
import type { Call, CallContext } from "./calls.js";
import { parseRequest } from "./request.js";
import type { InstanceControl } from "./sources.js";

/** A policy may list many ports. */
const POLICY_BODY_BYTES = 256 * 1024;

const instanceId = z.string({ error: '"instance_id" must be a string' }).min(1, {
  error: '"instance_id" is required',
});
const instanceRequest = z.object({ instance_id: instanceId });
const portPolicyRequest = z.object({ instance_id: instanceId, policy: portPolicySchema });
const readyRequest = z.object({
  instance_id: instanceId,
  ready: z.boolean({ error: '"ready" must be true or false' }),
});

function control(c: CallContext): InstanceControl {
  const instances = c.sources.instances;
  if (!instances) throw rpcError("E_RPC_UNKNOWN_METHOD", "registration is not running here");
  return instances;
}

async function idOf(c: CallContext, call: string): Promise<string> {
  return parseRequest(instanceRequest, await c.request(), call).instance_id;
}

const removeInstance: Call = {
  methods: ["POST"],
  async run(c) {
    const id = await idOf(c, "RemoveInstance");
    c.log.warn({ instanceId: id }, "admin: removing an instance");
    await control(c).forceRemove(id);
    return {};
  },
};

export const INSTANCE_CALLS: Readonly<Record<string, Call>> = {
  GetInstancePortPolicy: {
    methods: ["GET", "POST"],
    async run(c) {
      const instances = control(c);
      return instances.portPolicyView(await idOf(c, "GetInstancePortPolicy"));
    },
  },
  SetInstancePortPolicy: {
    methods: ["POST"],
    async run(c) {
      const instances = control(c);
      const raw = await c.request(POLICY_BODY_BYTES);
      const { instance_id: id, policy } = parseRequest(
        portPolicyRequest,
        raw,
        "SetInstancePortPolicy",
      );
      c.log.info({ instanceId: id }, "admin: overriding a port policy");
      await instances.overridePortPolicy(id, policy);
      return {};
    },
  },
  ClearInstancePortPolicy: {
    methods: ["POST"],
    async run(c) {
      const instances = control(c);
      await instances.overridePortPolicy(await idOf(c, "ClearInstancePortPolicy"), undefined);
      return {};
    },
  },
  SetInstanceReady: {
    methods: ["POST"],
    async run(c) {
      const instances = control(c);
      const { instance_id: id, ready } = parseRequest(
        readyRequest,
        await c.request(),
        "SetInstanceReady",
      );
      c.log.info({ instanceId: id, ready }, "admin: setting an instance's rotation");
      await instances.setReady(id, ready);
      return {};
    },
  },
  RemoveInstance: removeInstance,
  ForceRemoveInstance: removeInstance,
  GetInstanceHandshakes: {
    methods: ["GET", "POST"],
    async run(c) {
      return { handshakes: await handshakes(c, await idOf(c, "GetInstanceHandshakes")) };
    },
  },
};

/** One observation: dstack's `HandshakeEntry` (seconds), plus the observing node's name. */
interface HandshakeEntry {
  readonly observer_node_id: number;
  readonly observer: string;
  readonly timestamp: number;
}

/**
 * dstack's `GetInstanceHandshakes`: per gateway node that saw the instance's WireGuard peer
 * shake hands, the latest time. This host's from its own WireGuard (current to the poll); in a
 * region the other hosts' from their reports in etcd (as recent as their report period). An
 * unknown instance has none, as in dstack.
 */
async function handshakes(c: CallContext, id: string): Promise<HandshakeEntry[]> {
  const { region } = c.sources;
  const self = region?.name ?? "";
  const out: HandshakeEntry[] = [];
  const local = (await c.sources.view()).instances.find((i) => i.id === id);
  if (local && local.lastHandshakeMs > 0) {
    const timestamp = Math.floor(local.lastHandshakeMs / 1000);
    out.push({ observer_node_id: region ? nodeId(self) : 0, observer: self, timestamp });
  }
  if (!region) return out;
  for (const [name, report] of await region.reports()) {
    const ms = report.seen.get(id);
    if (name === self || ms === undefined) continue;
    out.push({ observer_node_id: nodeId(name), observer: name, timestamp: Math.floor(ms / 1000) });
  }
  return out;
}
