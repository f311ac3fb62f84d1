import type { LabAcme } from "./acme.js";
import { LAB_APP_ID, type LabCvm } from "./cvms.js";
import { step } from "./exec.js";
import { LAB, labPath, writeJson } from "./state.js";

/** Writes .lab/lab.json (what tests and users read) and prints a working curl for each URL form. */
export async function report(acme: LabAcme, cvms: readonly LabCvm[]): Promise<void> {
  const gw = LAB.gateway.address;
  const lab = {
    baseDomain: LAB.baseDomain,
    caFile: acme.rootFile,
    cvmCaFile: labPath("pki", "ca.pem"),
    gateway: {
      https: `${gw}:443`,
      http: `${gw}:80`,
      rpc: `${gw}:8000`,
      admin: `127.0.0.1:8001 (on the gateway host)`,
    },
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
  step("up: the gateway serves these (also in .lab/lab.json):");
  for (const line of lines) process.stdout.write(`  ${line}\n`);
}
