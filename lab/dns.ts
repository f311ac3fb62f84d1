import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alive, daemon, ok, sh, step, stopDaemon, waitUntil } from "./exec.js";
import { LAB, labDir, labPath, readJson, writeJson } from "./state.js";

export interface LabDns {
  readonly server: string;
  readonly keyName: string;
  readonly algorithm: "hmac-sha256";
  readonly secret: string;
  readonly zones: readonly string[];
  readonly pid: number;
}

const KEY_NAME = "lab-update";
const stateFile = () => labPath("dns.json");

function zoneFile(zone: string): string {
  return [
    "$TTL 60",
    `@ IN SOA ns.${LAB.zone}. hostmaster.${zone}. 1 60 60 600 60`,
    `@ IN NS ns.${LAB.zone}.`,
    ...(zone === LAB.zone ? [`ns IN A ${LAB.hostAddress}`] : []),
    "",
  ].join("\n");
}

async function answers(): Promise<boolean> {
  return ok("dig", [
    "+time=1",
    "+tries=1",
    `@${LAB.hostAddress}`,
    "-p",
    String(LAB.dnsPort),
    "SOA",
    LAB.zone,
  ]);
}

/**
 * BIND, authoritative for the lab's base domain and the custom domain's zone, taking RFC 2136
 * updates signed with a TSIG key (the lab's stand-in for Cloudflare).
 */
export async function dnsUp(): Promise<LabDns> {
  const previous = readJson<LabDns>(stateFile());
  if (previous && alive(previous.pid) && (await answers())) {
    step(`DNS: BIND already serving ${previous.zones.join(", ")} on ${previous.server}`);
    return previous;
  }
  await stopDaemon(previous?.pid);
  const dir = labDir("bind");
  const secret = previous?.secret ?? randomBytes(32).toString("base64");
  const zones = [LAB.zone, LAB.customDomain.split(".").slice(1).join(".")];
  for (const zone of zones) {
    const file = join(dir, `${zone}.zone`);
    if (!existsSync(file)) writeFileSync(file, zoneFile(zone));
  }
  writeFileSync(
    join(dir, "named.conf"),
    [
      `key "${KEY_NAME}" { algorithm hmac-sha256; secret "${secret}"; };`,
      "options {",
      `  directory "${dir}";`,
      `  pid-file "${join(dir, "named.pid")}";`,
      `  listen-on port ${LAB.dnsPort} { ${LAB.hostAddress}; };`,
      "  listen-on-v6 { none; };",
      "  recursion no;",
      "  allow-query { any; };",
      "  dnssec-validation no;",
      "};",
      ...zones.map(
        (z) =>
          `zone "${z}" { type primary; file "${join(dir, `${z}.zone`)}"; allow-update { key "${KEY_NAME}"; }; };`,
      ),
      "",
    ].join("\n"),
  );
  step(`DNS: starting BIND on ${LAB.hostAddress}:${LAB.dnsPort} for ${zones.join(", ")}`);
  const pid = daemon("named", ["-g", "-c", join(dir, "named.conf")], {
    logFile: join(dir, "named.log"),
  });
  await waitUntil("BIND to answer", answers, 15_000);
  const dns: LabDns = {
    server: `${LAB.hostAddress}:${LAB.dnsPort}`,
    keyName: KEY_NAME,
    algorithm: "hmac-sha256",
    secret,
    zones,
    pid,
  };
  writeJson(stateFile(), dns);
  return dns;
}

/** Adds or deletes one record (one value of a name and type) with nsupdate, signed with the TSIG key. */
export async function updateRecord(
  dns: LabDns,
  action: "add" | "delete",
  record: { name: string; type: string; value: string; ttl: number },
): Promise<void> {
  const rr = `${record.name}. ${action === "add" ? `${record.ttl} ` : ""}${record.type} ${record.value}`;
  step(`DNS: ${action} ${rr}`);
  const lines = [
    `server ${LAB.hostAddress} ${LAB.dnsPort}`,
    `key ${dns.algorithm}:${dns.keyName} ${dns.secret}`,
    `update ${action} ${rr}`,
    "send",
    "",
  ];
  await sh("nsupdate", [], { input: lines.join("\n"), timeoutMs: 10_000 });
}

export async function dnsDown(): Promise<void> {
  await stopDaemon(readJson<LabDns>(stateFile())?.pid);
}
