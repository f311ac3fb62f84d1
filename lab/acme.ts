import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, get } from "node:https";
import { alive, daemon, stopDaemon, step, waitUntil } from "./exec.js";
import { labLeaf, pem } from "./pki.js";
import { LAB, labDir, labPath, readJson, writeJson } from "./state.js";

export interface LabAcme {
  readonly directory: string;
  /** The CA that signed pebble's own listener certificate (what the gateway trusts for acme_url). */
  readonly listenerCaFile: string;
  /** Pebble's issuing root: what clients trust for certificates pebble issued. */
  readonly rootFile: string;
  readonly pid: number;
}

const stateFile = () => labPath("acme.json");

function fetchText(url: string, ca: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = get(url, { agent: new Agent({ ca }), timeout: 2_000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(res.statusCode === 200 ? body : undefined));
    });
    req.on("error", () => resolve(undefined));
    req.on("timeout", () => req.destroy());
  });
}

/** pebble as the ACME CA, validating DNS-01 against the lab's BIND. */
export async function acmeUp(): Promise<LabAcme> {
  const previous = readJson<LabAcme>(stateFile());
  const caFile = join(labDir("pki"), "ca.pem");
  if (
    previous &&
    alive(previous.pid) &&
    (await fetchText(previous.directory, pem(previous.listenerCaFile).toString()))
  ) {
    step(`ACME: pebble already at ${previous.directory}`);
    return previous;
  }
  await stopDaemon(previous?.pid);
  const dir = labDir("pebble");
  const listener = await labLeaf("pebble", [`IP:${LAB.hostAddress}`, "DNS:pebble.lab.test"]);
  const config = {
    pebble: {
      listenAddress: `${LAB.hostAddress}:${LAB.acmePort}`,
      managementListenAddress: `${LAB.hostAddress}:${LAB.acmeManagementPort}`,
      certificate: listener.certFile,
      privateKey: listener.keyFile,
      httpPort: 5002,
      tlsPort: 5001,
      ocspResponderURL: "",
      externalAccountBindingRequired: false,
    },
  };
  writeFileSync(join(dir, "pebble.json"), JSON.stringify(config, null, 2));
  step(
    `ACME: starting pebble on ${LAB.hostAddress}:${LAB.acmePort}, validating through ${LAB.hostAddress}:${LAB.dnsPort}`,
  );
  const pid = daemon(
    "pebble",
    ["-config", join(dir, "pebble.json"), "-dnsserver", `${LAB.hostAddress}:${LAB.dnsPort}`],
    {
      logFile: join(dir, "pebble.log"),
      env: { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_AUTHZREUSE: "0" },
    },
  );
  const directory = `https://${LAB.hostAddress}:${LAB.acmePort}/dir`;
  const ca = pem(caFile);
  await waitUntil(
    "pebble's directory",
    async () => (await fetchText(directory, ca)) !== undefined,
    15_000,
  );
  const root = await fetchText(`https://${LAB.hostAddress}:${LAB.acmeManagementPort}/roots/0`, ca);
  if (!root) throw new Error("pebble's management API gave no root certificate");
  const rootFile = join(dir, "root.pem");
  writeFileSync(rootFile, root);
  const acme: LabAcme = { directory, listenerCaFile: caFile, rootFile, pid };
  writeJson(stateFile(), acme);
  return acme;
}

export async function acmeDown(): Promise<void> {
  await stopDaemon(readJson<LabAcme>(stateFile())?.pid);
}
