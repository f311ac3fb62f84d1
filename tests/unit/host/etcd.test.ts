/**
 * The etcd member's unit as the program installs it on each host of a region: hardened like the
 * gateway's, and valid for systemd itself.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ETCD_PATHS, etcdUnitFile, type EtcdMemberSpec } from "../../../host/etcd.js";
import { tempFile } from "../../../testkit/tmp.js";

const run = promisify(execFile);

const members = [
  { name: "gw1", address: "192.0.2.1" },
  { name: "gw2", address: "192.0.2.2" },
  { name: "gw3", address: "192.0.2.3" },
];
const spec: EtcdMemberSpec = { self: members[1] as EtcdMemberSpec["self"], members, token: "us" };

describe("etcd member unit", () => {
  const text = etcdUnitFile(spec);
  const lines = text.split("\n");

  it("is hardened: its own user, no capabilities, a read-only system but its data", () => {
    for (const line of [
      "User=etcd",
      "Group=etcd",
      "Type=notify",
      "Restart=on-failure",
      "UMask=0077",
      "AmbientCapabilities=",
      "CapabilityBoundingSet=",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      `ReadWritePaths=${ETCD_PATHS.dataDir}`,
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "PrivateDevices=yes",
      "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
      "MemoryDenyWriteExecute=yes",
    ]) {
      expect(lines).toContain(line);
    }
    expect(lines.filter((l) => l.startsWith("ReadWritePaths="))).toHaveLength(1);
  });

  it("listens and peers over TLS with client certificates only, at its own address", () => {
    const exec = lines.find((l) => l.startsWith("ExecStart=")) ?? "";
    for (const flag of [
      "--name=gw2",
      "--listen-client-urls=https://192.0.2.2:2379",
      "--listen-peer-urls=https://192.0.2.2:2380",
      "--client-cert-auth",
      "--peer-client-cert-auth",
    ]) {
      expect(exec).toContain(flag);
    }
    expect(exec).not.toMatch(/http:\/\//);
  });

  it("passes systemd-analyze verify", async () => {
    expect(
      existsSync("/usr/bin/systemd-analyze"),
      "systemd-analyze missing: apt-get install systemd",
    ).toBe(true);
    expect(existsSync("/usr/bin/etcd"), "etcd missing: apt-get install etcd-server").toBe(true);
    const file = tempFile("etcd-unit-", "gateway-etcd.service", text);
    const { stderr } = await run("systemd-analyze", ["verify", file]);
    expect(stderr).toBe("");
  });
});
