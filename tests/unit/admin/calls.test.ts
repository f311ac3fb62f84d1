// Every admin prpc call: a good request answers dstack's shape, a malformed one is a 400 with a
// stable code and does nothing, one without credentials is a 401 and does nothing.
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  AdminServer,
  type AdminSources,
  resolveAdminAuth,
} from "../../../gateway-runtime/admin/index.js";
import type { RegionNodes } from "../../../gateway-runtime/admin/nodes.js";
import { nodeId } from "../../../gateway-runtime/cluster/index.js";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { adminView, NOW } from "./view.js";

const TOKEN = "calls-admin-token-0123";
const ADDRESS = "127.0.10.4";
const servers: AdminServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const node = (name: string) => ({
  name,
  wg_public_key: `${name}-key`,
  wg_ip: "10.4.0.1/16",
  wg_endpoint: `${name}:51820`,
  url: "",
  version: "0.1.0",
  started_at: NOW - 60_000,
  status: "up" as const,
  last_seen: NOW,
});

function fakes() {
  const region: RegionNodes & Record<string, unknown> = {
    name: "gw-a",
    nodes: () => [node("gw-a"), node("gw-b")],
    statuses: () => [{ name: "gw-b", status: "down" }],
    resolve: (t) => ("name" in t ? t.name : "gw-b"),
    setStatus: vi.fn(async () => {}),
    reports: vi.fn(async () => {
      const seen = (ms: number) => new Map([["aa0101", ms]]);
      return new Map([
        ["gw-a", { at: NOW, seen: seen(NOW - 90_000) }],
        ["gw-b", { at: NOW, seen: seen(NOW - 20_000) }],
      ]);
    }),
  };
  const sources = {
    view: vi.fn(async () => adminView()),
    reloadCertificate: vi.fn(async () => {}),
    renewCertificate: vi.fn(async () => ({
      action: "renewed" as const,
      reason: "forced" as const,
    })),
    setCaa: vi.fn(async () => {}),
    exit: vi.fn(),
    instances: {
      portPolicyView: vi.fn(() => ({ source: "none" })),
      overridePortPolicy: vi.fn(async () => {}),
      setReady: vi.fn(async () => {}),
      forceRemove: vi.fn(async () => {}),
    },
    region,
  } satisfies AdminSources;
  return sources;
}

async function start() {
  const sources = fakes();
  const raw = withKey(minimalConfig(), "core.admin", { auth_token: TOKEN });
  const server = await AdminServer.start({
    listen: { address: ADDRESS, port: 0 },
    auth: await resolveAdminAuth(parseGatewayConfig(raw, "test").core.admin, {}),
    urls: { url: "", bootnode: "" },
    sources,
    log: silentLogger(),
  });
  servers.push(server);
  const base = `http://${ADDRESS}:${(server.address() as { port: number }).port}/prpc/Admin.`;
  const call = async (name: string, body: string | object = "", token: string | null = TOKEN) => {
    const res = await fetch(`${base}${name}`, {
      method: "POST",
      headers: token ? { authorization: `Bearer ${token}` } : {},
      body: typeof body === "string" ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  return { call, sources };
}

type Sources = ReturnType<typeof fakes>;
interface Case {
  readonly body: object;
  readonly answer: unknown;
  readonly malformed: string | object;
  readonly code: string;
  /** What the good request did; the malformed and unauthenticated ones must not do it. */
  readonly effect?: (s: Sources) => ReturnType<typeof vi.fn>;
  readonly args?: unknown[];
}

const bSeen = Math.floor((NOW - 20_000) / 1000);
const CASES: Record<string, Case> = {
  Status: {
    body: {},
    answer: expect.objectContaining({ num_connections: 2 }),
    malformed: "[1]",
    code: "E_RPC_BAD_REQUEST",
  },
  GetInfo: {
    body: { id: "aa0101" },
    answer: expect.objectContaining({ found: true }),
    malformed: { id: 7 },
    code: "E_RPC_BAD_REQUEST",
  },
  GetMeta: {
    body: {},
    answer: { registered: 3, online: 1 },
    malformed: "{no",
    code: "E_RPC_BAD_JSON",
  },
  GetGlobalConnections: {
    body: {},
    answer: { total_connections: 2, node_connections: { [nodeId("gw-a")]: 2 }, partial: true },
    malformed: '"x"',
    code: "E_RPC_BAD_REQUEST",
  },
  Exit: {
    body: { force: true },
    answer: {},
    malformed: { force: "yes" },
    code: "E_RPC_BAD_REQUEST",
    effect: (s) => s.exit,
    args: [true],
  },
  RenewCert: {
    body: {},
    answer: { renewed: true },
    malformed: "[]",
    code: "E_RPC_BAD_REQUEST",
    effect: (s) => s.renewCertificate,
  },
  ReloadCert: {
    body: {},
    answer: {},
    malformed: "{",
    code: "E_RPC_BAD_JSON",
    effect: (s) => s.reloadCertificate,
  },
  SetCaa: {
    body: {},
    answer: {},
    malformed: "7",
    code: "E_RPC_BAD_REQUEST",
    effect: (s) => s.setCaa,
  },
  SetNodeStatus: {
    body: { name: "gw-b", status: "down" },
    answer: {},
    malformed: { name: "gw-b", status: "sideways" },
    code: "E_RPC_BAD_REQUEST",
    effect: (s) => s.region.setStatus as ReturnType<typeof vi.fn>,
    args: ["gw-b", "down"],
  },
  GetNodeStatuses: {
    body: {},
    answer: { statuses: [{ node_id: nodeId("gw-b"), status: "down" }] },
    malformed: "[",
    code: "E_RPC_BAD_JSON",
  },
  GetInstanceHandshakes: {
    body: { instance_id: "aa0101" },
    answer: {
      handshakes: [
        {
          observer_node_id: nodeId("gw-a"),
          observer: "gw-a",
          timestamp: Math.floor((NOW - 5_000) / 1000),
        },
        { observer_node_id: nodeId("gw-b"), observer: "gw-b", timestamp: bSeen },
      ],
    },
    malformed: { instance_id: "" },
    code: "E_RPC_BAD_REQUEST",
  },
  GetInstancePortPolicy: {
    body: { instance_id: "aa0101" },
    answer: { source: "none" },
    malformed: {},
    code: "E_RPC_BAD_REQUEST",
    effect: (s) => s.instances.portPolicyView,
    args: ["aa0101"],
  },
  SetInstancePortPolicy: {
    body: {
      instance_id: "aa0101",
      policy: { ports: [{ port: 443, pp: false }], restrict_mode: true },
    },
    answer: {},
    malformed: { instance_id: "aa0101", policy: { ports: "all" } },
    code: "E_RPC_BAD_REQUEST",
    effect: (s) => s.instances.overridePortPolicy,
  },
  ClearInstancePortPolicy: {
    body: { instance_id: "aa0101" },
    answer: {},
    malformed: { instance_id: ["aa0101"] },
    code: "E_RPC_BAD_REQUEST",
    effect: (s) => s.instances.overridePortPolicy,
    args: ["aa0101", undefined],
  },
  SetInstanceReady: {
    body: { instance_id: "aa0101", ready: false },
    answer: {},
    malformed: { instance_id: "aa0101", ready: "no" },
    code: "E_RPC_BAD_REQUEST",
    effect: (s) => s.instances.setReady,
    args: ["aa0101", false],
  },
  RemoveInstance: {
    body: { instance_id: "aa0102" },
    answer: {},
    malformed: { id: "aa0102" },
    code: "E_RPC_BAD_REQUEST",
    effect: (s) => s.instances.forceRemove,
    args: ["aa0102"],
  },
  ForceRemoveInstance: {
    body: { instance_id: "aa0102" },
    answer: {},
    malformed: "{}x",
    code: "E_RPC_BAD_JSON",
    effect: (s) => s.instances.forceRemove,
    args: ["aa0102"],
  },
};

describe("every admin call", () => {
  it.each(Object.keys(CASES))("%s: a good request answers dstack's shape", async (name) => {
    const c = CASES[name] as Case;
    const { call, sources } = await start();
    expect(await call(name, c.body)).toEqual({ status: 200, json: c.answer });
    if (c.effect) {
      const spy = c.effect(sources);
      await vi.waitFor(() => expect(spy).toHaveBeenCalledTimes(1));
      if (c.args) expect(spy).toHaveBeenCalledWith(...c.args);
    }
  });

  it.each(Object.keys(CASES))(
    "%s: a malformed request is a 400 with a stable code",
    async (name) => {
      const c = CASES[name] as Case;
      const { call, sources } = await start();
      expect(await call(name, c.malformed)).toMatchObject({ status: 400, json: { code: c.code } });
      if (c.effect) expect(c.effect(sources)).not.toHaveBeenCalled();
    },
  );

  it.each(Object.keys(CASES))("%s: without credentials is a 401 and does nothing", async (name) => {
    const c = CASES[name] as Case;
    const { call, sources } = await start();
    expect(await call(name, c.body, null)).toMatchObject({
      status: 401,
      json: { code: "E_ADMIN_UNAUTHORIZED" },
    });
    expect(await call(name, c.body, `${TOKEN}x`)).toMatchObject({ status: 401 });
    expect(sources.view).not.toHaveBeenCalled();
    if (c.effect) expect(c.effect(sources)).not.toHaveBeenCalled();
  });
});

describe("call details", () => {
  it("Exit is graceful by default, and answers before the process is told to go", async () => {
    const { call, sources } = await start();
    expect(await call("Exit")).toEqual({ status: 200, json: {} });
    await vi.waitFor(() => expect(sources.exit).toHaveBeenCalledWith(false));
  });

  it("SetCaa and RenewCert are 409 without ACME; the instance calls 404 without registration", async () => {
    const sources = fakes();
    const raw = withKey(minimalConfig(), "core.admin", { auth_token: TOKEN });
    const server = await AdminServer.start({
      listen: { address: ADDRESS, port: 0 },
      auth: await resolveAdminAuth(parseGatewayConfig(raw, "test").core.admin, {}),
      urls: { url: "", bootnode: "" },
      sources: { view: sources.view, reloadCertificate: sources.reloadCertificate },
      log: silentLogger(),
    });
    servers.push(server);
    const url = `http://${ADDRESS}:${(server.address() as { port: number }).port}/prpc/Admin.`;
    const post = async (name: string, body: object) => {
      const res = await fetch(`${url}${name}`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify(body),
      });
      return [res.status, ((await res.json()) as { code: string }).code];
    };
    expect(await post("SetCaa", {})).toEqual([409, "E_ADMIN_CERTBOT_DISABLED"]);
    expect(await post("SetInstanceReady", { instance_id: "a", ready: true })).toEqual([
      404,
      "E_RPC_UNKNOWN_METHOD",
    ]);
    expect(await post("GetGlobalConnections", {})).toEqual([200, undefined]);
  });

  it("GetInstanceHandshakes of an unknown instance is empty, as in dstack; GET takes a query", async () => {
    const { sources } = await start();
    const server = servers[0] as AdminServer;
    const port = (server.address() as { port: number }).port;
    const res = await fetch(
      `http://${ADDRESS}:${port}/prpc/Admin.GetInstanceHandshakes?instance_id=nope&json`,
      { headers: { authorization: `Bearer ${TOKEN}` } },
    );
    expect(await res.json()).toEqual({ handshakes: [] });
    expect(sources.region.reports).toHaveBeenCalledTimes(1);
  });
});
