import { describe, expect, it } from "vitest";
import { setNodeStatusRequest } from "../../../gateway-runtime/admin/nodes.js";
import {
  activeNodes,
  decodeHandshakes,
  encodeHandshakes,
  findNode,
  freshest,
  gatewayNodeInfo,
  type NodeView,
  nodeId,
  nodeUuid,
  parseNodeRecord,
  parseNodeStatus,
  reportPeriodMs,
} from "../../../gateway-runtime/cluster/index.js";

const node = (name: string, status: "up" | "down" = "up"): NodeView => ({
  name,
  wg_public_key: `${name}-key`,
  wg_ip: `10.4.0.${name.length}/16`,
  wg_endpoint: `${name}.example:51820`,
  url: "",
  version: "1",
  started_at: 1000,
  status,
  last_seen: 5_500,
});

describe("region nodes", () => {
  it("lists this node first, then every other live node that is up, by name", () => {
    const self = node("gw2");
    const list = activeNodes(self, [node("gw3"), node("gw1"), node("gw2"), node("gw4", "down")]);
    expect(list.map((n) => n.name)).toEqual(["gw2", "gw1", "gw3"]);
  });

  it("lists this node even before its own record is seen back", () => {
    expect(activeNodes(node("gw1"), []).map((n) => n.name)).toEqual(["gw1"]);
  });

  it("writes dstack's GatewayNodeInfo: a stable uint32 id, bytes as 0x-hex, seconds", () => {
    const info = gatewayNodeInfo(node("gw1"));
    expect(info).toEqual({
      id: nodeId("gw1"),
      uuid: nodeUuid("gw1"),
      url: "",
      last_seen: 5,
      wg_public_key: "gw1-key",
      wg_ip: "10.4.0.3/16",
      wg_endpoint: "gw1.example:51820",
    });
    expect(Number.isInteger(info.id) && info.id >= 0 && info.id <= 0xffff_ffff).toBe(true);
    expect(info.uuid).toMatch(/^0x[0-9a-f]{32}$/);
    expect(nodeId("gw1")).toBe(nodeId("gw1"));
    expect(nodeId("gw1")).not.toBe(nodeId("gw2"));
  });

  it("finds a node by id or name, and not when ambiguous or absent", () => {
    expect(findNode(["gw1", "gw2"], { id: nodeId("gw2") })).toBe("gw2");
    expect(findNode(["gw1", "gw2"], { name: "gw1" })).toBe("gw1");
    expect(findNode(["gw1"], { id: nodeId("gw9") })).toBeUndefined();
  });

  it("reads records and statuses defensively", () => {
    expect(parseNodeRecord("{")).toBeUndefined();
    expect(parseNodeRecord('{"name":"x"}')).toBeUndefined();
    expect(parseNodeRecord(JSON.stringify(node("gw1")))?.name).toBe("gw1");
    expect(parseNodeStatus(undefined)).toBe("up");
    expect(parseNodeStatus('{"status":"down"}')).toBe("down");
    expect(parseNodeStatus("garbage")).toBe("up");
  });

  it("parses dstack's SetNodeStatusRequest, or a name instead of the id", () => {
    expect(setNodeStatusRequest.safeParse({ id: 7, status: "down" }).success).toBe(true);
    expect(setNodeStatusRequest.safeParse({ name: "gw1", status: "up" }).success).toBe(true);
    for (const bad of [
      {},
      { id: 7 },
      { id: 7, status: "draining" },
      { id: -1, status: "up" },
      { id: "7", status: "up" },
      { id: 7, name: "gw1", status: "up" },
    ])
      expect(setNodeStatusRequest.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
  });
});

describe("handshake reports", () => {
  it("round-trip in whole seconds, dropping never-seen instances", () => {
    const seen = new Map([
      ["aa", 12_345],
      ["bb", 0],
    ]);
    const report = decodeHandshakes(encodeHandshakes(99_999, seen));
    expect(report).toEqual({ at: 99_000, seen: new Map([["aa", 12_000]]) });
    expect(decodeHandshakes("[]")).toBeUndefined();
    expect(decodeHandshakes("nope")).toBeUndefined();
  });

  it("keep 4,000 instances far under etcd's 1.5 MiB request limit", () => {
    const seen = new Map<string, number>();
    for (let k = 0; k < 4000; k++)
      seen.set(k.toString(16).padStart(40, "0"), 1_765_000_000_000 + k * 1000);
    const bytes = Buffer.byteLength(encodeHandshakes(1_765_000_000_000, seen));
    expect(bytes).toBeLessThan(1.5 * 1024 * 1024 * 0.25);
  });

  it("take the freshest handshake any host saw", () => {
    const a = {
      at: 0,
      seen: new Map([
        ["x", 5],
        ["y", 9],
      ]),
    };
    const b = { at: 0, seen: new Map([["x", 7]]) };
    expect(freshest([a, b])).toEqual(
      new Map([
        ["x", 7],
        ["y", 9],
      ]),
    );
  });

  it("are written a tenth of the recycle timeout apart, within [poll, 5 min]", () => {
    expect(reportPeriodMs(36_000_000, 10_000)).toBe(300_000);
    expect(reportPeriodMs(600_000, 10_000)).toBe(60_000);
    expect(reportPeriodMs(20_000, 10_000)).toBe(10_000);
  });
});
