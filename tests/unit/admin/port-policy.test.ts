import { afterEach, describe, expect, it, vi } from "vitest";
import {
  AdminServer,
  type AdminSources,
  resolveAdminAuth,
} from "../../../gateway-runtime/admin/index.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { adminView } from "./view.js";

const TOKEN = "port-policy-admin-token";
const servers: AdminServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const LOCKDOWN = { ports: [], restrict_mode: true };

async function start() {
  const portPolicies = {
    portPolicyView: vi.fn((id: string) => {
      if (id !== "aa01") throw new GatewayError("E_REGISTRY_UNKNOWN_INSTANCE", `${id} unknown`);
      return { effective: LOCKDOWN, source: "admin", admin_override: LOCKDOWN };
    }),
    overridePortPolicy: vi.fn(async () => {}),
  };
  const sources: AdminSources = {
    view: async () => adminView(),
    reloadCertificate: async () => {},
    instances: { ...portPolicies, setReady: vi.fn(), forceRemove: vi.fn() },
  };
  const raw = withKey(minimalConfig(), "core.admin", { auth_token: TOKEN });
  const server = await AdminServer.start({
    listen: { address: "127.0.10.3", port: 0 },
    auth: await resolveAdminAuth(parseGatewayConfig(raw, "test").core.admin, {}),
    urls: { url: "", bootnode: "" },
    sources,
    log: silentLogger(),
  });
  servers.push(server);
  const base = `http://127.0.10.3:${(server.address() as { port: number }).port}/prpc/Admin.`;
  const call = async (method: string, body?: unknown, token: string | null = TOKEN) => {
    const res = await fetch(`${base}${method}`, {
      method: "POST",
      headers: token ? { authorization: `Bearer ${token}` } : {},
      body: body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  return { call, portPolicies };
}

describe("dstack's port policy admin calls", () => {
  it("GetInstancePortPolicy: the view; an unknown instance is 404; malformed is 400", async () => {
    const { call } = await start();
    expect(await call("GetInstancePortPolicy", { instance_id: "aa01" })).toEqual({
      status: 200,
      json: { effective: LOCKDOWN, source: "admin", admin_override: LOCKDOWN },
    });
    expect((await call("GetInstancePortPolicy", { instance_id: "bb02" })).status).toBe(404);
    expect(await call("GetInstancePortPolicy", { instance_id: 7 })).toMatchObject({
      status: 400,
      json: { code: "E_RPC_BAD_REQUEST" },
    });
    expect((await call("GetInstancePortPolicy", "{oops")).json.code).toBe("E_RPC_BAD_JSON");
  });

  it("SetInstancePortPolicy: stores the override; a bad policy or none is 400, nothing set", async () => {
    const { call, portPolicies } = await start();
    const policy = { ports: [{ port: 443, pp: true }], restrict_mode: true };
    expect(await call("SetInstancePortPolicy", { instance_id: "aa01", policy })).toEqual({
      status: 200,
      json: {},
    });
    expect(portPolicies.overridePortPolicy).toHaveBeenCalledWith("aa01", policy);
    for (const bad of [
      { instance_id: "aa01" },
      { instance_id: "aa01", policy: { ports: [{ port: 70000 }] } },
      { policy },
    ]) {
      expect((await call("SetInstancePortPolicy", bad)).json.code).toBe("E_RPC_BAD_REQUEST");
    }
    expect(portPolicies.overridePortPolicy).toHaveBeenCalledTimes(1);
  });

  it("ClearInstancePortPolicy: clears the override; malformed is 400", async () => {
    const { call, portPolicies } = await start();
    expect((await call("ClearInstancePortPolicy", { instance_id: "aa01" })).status).toBe(200);
    expect(portPolicies.overridePortPolicy).toHaveBeenCalledWith("aa01", undefined);
    expect((await call("ClearInstancePortPolicy", {})).json.code).toBe("E_RPC_BAD_REQUEST");
  });

  it.each(["GetInstancePortPolicy", "SetInstancePortPolicy", "ClearInstancePortPolicy"])(
    "%s without the token is 401 and does nothing",
    async (method) => {
      const { call, portPolicies } = await start();
      const body = { instance_id: "aa01", policy: LOCKDOWN };
      expect(await call(method, body, null)).toMatchObject({
        status: 401,
        json: { code: "E_ADMIN_UNAUTHORIZED" },
      });
      expect(portPolicies.portPolicyView).not.toHaveBeenCalled();
      expect(portPolicies.overridePortPolicy).not.toHaveBeenCalled();
    },
  );
});
