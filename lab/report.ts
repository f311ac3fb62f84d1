import type { LabAcme } from "./acme.js";
import { LAB_APP_ID, type LabCvm } from "./cvms.js";
import { step } from "./exec.js";
import { FIRST_GATEWAY, LAB, type LabGatewaySpec, labPath, writeJson } from "./state.js";

/** How lab.json tells where one gateway host serves. */
const endpoints = (host: LabGatewaySpec) => ({
  https: `${host.address}:443`,
  http: `${host.address}:80`,
  rpc: `${host.address}:8000`,
  admin: `127.0.0.1:8001 (on the gateway host)`,
});

/**
 * Writes .lab/lab.json (what tests and users read) and prints a working curl for each URL form.
 * `gateway` is the first host (the one CVMs register through); `gateways` is every host.
 */
export async function report(
  acme: LabAcme,
  cvms: readonly LabCvm[],
  gateways: readonly LabGatewaySpec[],
): Promise<void> {
  const gw = FIRST_GATEWAY.address;
  const lab = {
    baseDomain: LAB.baseDomain,
    rpcDomain: LAB.rpcDomain,
    caFile: acme.rootFile,
    cvmCaFile: labPath("pki", "ca.pem"),
    gateway: endpoints(FIRST_GATEWAY),
    gateways: gateways.map(endpoints),
    apps: [
      {
        appId: LAB_APP_ID,
        instanceIds: cvms.map((c) => c.instanceId),
        ports: { http: 80, tls: 8443, h2: 50051, ssh: 22 },
      },
    ],
    customDomain: LAB.customDomain,
  };
  writeJson(labPath("lab.json"), lab);
  const resolve = (name: string) => `--resolve ${name}:443:${gw}`;
  const app = LAB_APP_ID;
  const b = LAB.baseDomain;
  const lines = [
    `curl --cacert ${acme.rootFile} ${resolve(`${app}.${b}`)} https://${app}.${b}/`,
    `curl --cacert ${acme.rootFile} ${resolve(`${app}-8080.${b}`)} https://${app}-8080.${b}/`,
    `curl --cacert ${acme.rootFile} --http2 ${resolve(`${app}-50051g.${b}`)} https://${app}-50051g.${b}/pkg.Svc/Call`,
    `curl --cacert ${cvms.length > 0 ? lab.cvmCaFile : ""} ${resolve(`${app}-8443s.${b}`)} https://${app}-8443s.${b}/   # passthrough: the CVM's own certificate`,
    `openssl s_client -connect ${gw}:443 -servername ${LAB.customDomain} -CAfile ${lab.cvmCaFile}   # custom domain (TXT in the lab DNS)`,
    `ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ProxyCommand="openssl s_client -quiet -connect ${gw}:443 -servername ${app}-22.${b} -CAfile ${acme.rootFile}" -i .lab/host/deploy_key root@cvm`,
    `curl -i -H 'host: ${app}.${b}' http://${gw}/   # redirect to https`,
  ];
  step(
    gateways.length > 1
      ? `up: every gateway host (${gateways.map((g) => g.address).join(", ")}) serves these; the first as an example (also in .lab/lab.json):`
      : "up: the gateway serves these (also in .lab/lab.json):",
  );
  for (const line of lines) process.stdout.write(`  ${line}\n`);
}
