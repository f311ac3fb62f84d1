// The lab the e2e suite runs against (npm run lab), and the clients that reach it. Not a test
// file: lab.test.ts calls useLab() once, so one lab serves the whole suite.
import { existsSync, readFileSync } from "node:fs";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, expect } from "vitest";
import { sshOptions } from "../../lab/host.js";
import { run } from "../helpers/lab-client.js";
import { until } from "../helpers/poll.js";

export const ROOT = new URL("../../", import.meta.url).pathname;
const LAB_JSON = `${ROOT}.lab/lab.json`;

export interface LabInfo {
  baseDomain: string;
  caFile: string;
  cvmCaFile: string;
  gateway: { https: string; http: string; rpc: string };
  apps: { appId: string; instanceIds: string[] }[];
  customDomain: string;
}

/** The running lab: set by useLab()'s beforeAll. */
export const ctx = { lab: undefined as unknown as LabInfo, app: "", gw: "", wasUp: false };

export const lab$ = (...args: string[]) =>
  run(process.execPath, ["--import", "tsx", "lab/main.ts", ...args], { timeoutMs: 300_000 });
export const host = (label: string) => `${label}.${ctx.lab.baseDomain}`;
export const curl = (label: string, path = "/", extra: string[] = [], ca = ctx.lab.caFile) =>
  run("curl", [
    "-sS",
    "--max-time",
    "10",
    "--cacert",
    ca,
    "--resolve",
    `${host(label)}:443:${ctx.gw}`,
    ...extra,
    `https://${host(label)}${path}`,
  ]);
export const deployKey = `${ROOT}.lab/host/deploy_key`;
export const ssh = (command: string) =>
  run("ssh", [...sshOptions(deployKey), `root@${ctx.gw}`, command]);

/**
 * One connection through the gateway with `openssl s_client` to `servername`, sending `input`;
 * the CVMs' own CA checks the certificate (passthrough), and with `verify` a bad one fails it.
 */
export const sClient = (servername: string, input: string, opts: { verify?: boolean } = {}) =>
  run(
    "openssl",
    [
      "s_client",
      "-connect",
      `${ctx.gw}:443`,
      "-servername",
      servername,
      "-CAfile",
      ctx.lab.cvmCaFile,
      ...(opts.verify ? ["-verify_return_error"] : []),
      "-ign_eof",
    ],
    { input },
  );

export function openTls(label: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: ctx.gw,
      port: 443,
      servername: host(label),
      ca: readFileSync(ctx.lab.caFile),
    });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
  });
}

/** `until` of tests/helpers/poll.ts with this suite's defaults: 30 s, a check every 500 ms. */
export const eventually = (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) =>
  until(what, check, timeoutMs, { everyMs: 500 });

/** Brings the lab up before the suite (if it is not) and down after (if it was not). */
export function useLab(): void {
  beforeAll(async () => {
    ctx.wasUp = existsSync(LAB_JSON);
    const r = await lab$("up");
    if (r.code !== 0) throw new Error(`npm run lab failed:\n${r.out}\n${r.err}`);
    expect(r.out).toMatch(/lab: up in [\d.]+ s/);
    ctx.lab = JSON.parse(readFileSync(LAB_JSON, "utf8")) as LabInfo;
    ctx.app = ctx.lab.apps[0]?.appId ?? "";
    ctx.gw = ctx.lab.gateway.https.split(":")[0] ?? "";
    // A redeploy restarts the gateway; its tunnels come back with the CVMs' next handshakes.
    await eventually(
      "the gateway to route to both instances",
      async () => {
        const seen = new Set<string>();
        for (let k = 0; k < 6; k++)
          seen.add((await curl(`${ctx.app}-8080`)).out.split(" ")[0] ?? "");
        return seen.size === 2;
      },
      200_000,
    );
  }, 520_000);
  afterAll(async () => {
    if (!ctx.wasUp) {
      const r = await lab$("down");
      expect(r.code).toBe(0);
      expect(existsSync(LAB_JSON)).toBe(false);
    }
  }, 120_000);
}
