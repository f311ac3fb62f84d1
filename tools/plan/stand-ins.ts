import { createHash } from "node:crypto";
import { wgPublicKey } from "../../gateway-runtime/keys/wireguard.js";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * Deterministic stand-ins for what a real run generates (WireGuard keys, the ACME account, the
 * admin token, the etcd CA and certificates), derived from the stack and the resource's name. Offline plans seed their prior
 * state with them and the mocks tests answer with them, so a plan shows an update of a stack
 * whose keys exist and never changes between runs.
 */
export function standIn(
  stack: string,
  type: string,
  name: string,
  inputs: Record<string, unknown>,
): { id: string; outputs: Record<string, unknown> } | undefined {
  const seed = sha(`${stack}:${name}`);
  if (type === "pulumi-nodejs:dynamic/gateway:WireGuardKey") {
    const privateKey = Buffer.from(sha(`${seed}:${inputs.rotation}`), "hex").toString("base64");
    const publicKey = wgPublicKey(privateKey) as string;
    return { id: publicKey, outputs: { ...inputs, privateKey, publicKey } };
  }
  if (type === "pulumi-nodejs:dynamic/gateway:AcmeAccount") {
    const origin = new URL(String(inputs.directoryUrl)).origin;
    const accountUrl = `${origin}/acme/acct/${Number.parseInt(seed.slice(0, 8), 16)}`;
    const accountKey = `-----BEGIN PRIVATE KEY-----\nstand-in ${seed.slice(0, 16)}\n-----END PRIVATE KEY-----\n`;
    return { id: accountUrl, outputs: { ...inputs, accountUrl, accountKey } };
  }
  // Not certificates: plans never parse them, and real ones could not be made deterministically.
  const pem = (label: string) =>
    `-----BEGIN ${label}-----\nstandin${sha(`${seed}:${label}`).slice(0, 16)}\n-----END ${label}-----\n`;
  if (type === "pulumi-nodejs:dynamic/gateway:EtcdCa") {
    const outputs = { ...inputs, certPem: pem("CERTIFICATE"), keyPem: pem("PRIVATE KEY") };
    return { id: `etcd-ca-${seed.slice(0, 32)}`, outputs };
  }
  if (type === "pulumi-nodejs:dynamic/gateway:EtcdCertificate") {
    const { caKeyPem: _signer, ...rest } = inputs;
    const outputs = { ...rest, certPem: pem("CERTIFICATE"), keyPem: pem("PRIVATE KEY") };
    return { id: `etcd-cert-${seed.slice(0, 32)}`, outputs };
  }
  if (type === "pulumi-nodejs:dynamic/gateway:AdminToken") {
    const token = Buffer.from(sha(`${seed}:${inputs.rotation}`), "hex").toString("base64url");
    return { id: `admin-token-${seed.slice(0, 12)}`, outputs: { ...inputs, token } };
  }
  // The command provider's id: the name and 8 random hex digits (here from the seed); its
  // outputs are its inputs, plus the output streams of a command.
  if (type === "command:remote:Command")
    return { id: `${name}${seed.slice(0, 8)}`, outputs: { ...inputs, stdout: "", stderr: "" } };
  if (type === "command:remote:CopyToRemote")
    return { id: `${name}${seed.slice(0, 8)}`, outputs: { ...inputs } };
  return undefined;
}
