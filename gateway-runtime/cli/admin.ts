import { request } from "node:http";
import { ADMIN_TOKEN_ENV, adminToken } from "../admin/index.js";
import { loadConfigFile } from "../config/index.js";

/** Where the Pulumi program installs a host's config (host/layout.ts; a test keeps them equal). */
export const HOST_CONFIG = "/etc/gateway/gateway.toml";

export const adminHelp = `Usage: gateway admin [--config FILE] <call> [JSON]

Calls the admin API of the gateway configured in FILE (default ${HOST_CONFIG}), with the
token from that config (auth_token or auth_token_file) or from ${ADMIN_TOKEN_ENV}, over
core.admin.socket or core.admin.address:port. <call> is an Admin method or "metrics":
  Status, GetInfo '{"id":"<instance>"}', GetMeta, GetGlobalConnections,
  GetInstanceHandshakes '{"instance_id":"<instance>"}',
  RenewCert, ReloadCert, SetCaa, Exit ['{"force":true}'],
  SetNodeStatus '{"name":"<node>","status":"down"|"up"}', GetNodeStatuses,
  GetInstancePortPolicy, SetInstancePortPolicy, ClearInstancePortPolicy,
  SetInstanceReady '{"instance_id":"<instance>","ready":false|true}' (out of / back into its
  app's rotation), RemoveInstance '{"instance_id":"<instance>"}' (now, freeing its address).
With JSON the call is a POST with that body, otherwise a GET (calls that change something are
always POSTs). Prints the answer; exits 1 when the API refuses the call.`;

/** Calls the API takes only as POST (they change something), sent as POST without JSON too. */
const ALWAYS_POST = new Set(["RenewCert", "ReloadCert", "SetCaa", "Exit"]);

export async function adminCommand(
  configFile: string,
  call: string,
  json?: string,
): Promise<number> {
  const answer = await adminCall(configFile, call, json);
  if (answer === undefined) return 1;
  const { status, body } = answer;
  (status < 400 ? process.stdout : process.stderr).write(body.endsWith("\n") ? body : `${body}\n`);
  return status < 400 ? 0 : 1;
}

/**
 * One call to the admin API of the gateway configured in `configFile` (also `gateway probe`'s
 * registrations gate); undefined, with a message, when the config disables the API.
 */
export async function adminCall(
  configFile: string,
  call: string,
  json?: string,
): Promise<{ status: number; body: string } | undefined> {
  const { admin } = loadConfigFile(configFile).core;
  if (!admin.enabled) {
    process.stderr.write(`gateway admin: core.admin.enabled is false in ${configFile}\n`);
    return undefined;
  }
  if (json !== undefined) JSON.parse(json); // a typo fails here, not as the API's 400
  const token = (await adminToken(admin))?.token;
  const path = call === "metrics" ? "/metrics" : `/prpc/Admin.${call}`;
  const method = json !== undefined || ALWAYS_POST.has(call) ? "POST" : "GET";
  const where =
    admin.socket !== undefined
      ? { socketPath: admin.socket }
      : { host: admin.address, port: admin.port };
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      {
        ...where,
        path,
        method,
        timeout: 120_000,
        headers: {
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          ...(json === undefined ? {} : { "content-type": "application/json" }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("the admin API did not answer in 120 s")));
    req.on("error", reject);
    req.end(json ?? (method === "POST" ? "{}" : undefined));
  });
}
