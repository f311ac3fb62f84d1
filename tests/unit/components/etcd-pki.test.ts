import { createPrivateKey, X509Certificate } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import forge from "node-forge";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EtcdCa,
  EtcdCertificate,
  etcdCaProvider,
  etcdCertificateProvider,
} from "../../../components/etcd-pki.js";
import { planMocks } from "../../helpers/pulumi-mocks.js";
import { compileProgram } from "./compiled.js";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const YEAR = 365 * 24 * 3600_000;

let compiled: string;
let x509Module: string;
beforeAll(async () => {
  compiled = await compileProgram();
  x509Module = join(compiled, "bin/components/x509.js");
});
afterAll(() => rmSync(compiled, { recursive: true, force: true }));

/** The CA and two leaves, issued by the providers as a real run does (compiled module). */
async function issue() {
  const ca = (await etcdCaProvider(x509Module).create({ commonName: "eu etcd CA" })).outs;
  if (ca === undefined) throw new Error("no CA");
  const leaf = etcdCertificateProvider(x509Module);
  const base = { caCertPem: ca.certPem, caKeyPem: ca.keyPem };
  const member = await leaf.create({
    ...base,
    commonName: "gw2",
    dnsNames: ["gw2"],
    ips: ["198.51.100.21", "2001:db8:20::21"],
    usage: "member",
  });
  const client = await leaf.create({
    ...base,
    commonName: "eu gateway",
    dnsNames: [],
    ips: [],
    usage: "client",
  });
  return { ca, member, client };
}

describe("the region's etcd PKI", () => {
  it("a CA, and leaves that chain to it with the SANs and key usages etcd checks", async () => {
    const { ca, member, client } = await issue();
    const caCert = new X509Certificate(ca.certPem);
    expect(caCert.ca).toBe(true);
    expect(caCert.checkIssued(caCert)).toBe(true);
    expect(Date.parse(caCert.validTo) - Date.now()).toBeGreaterThan(9.9 * YEAR);
    const caUsage = forge.pki.certificateFromPem(ca.certPem).getExtension("keyUsage") as {
      keyCertSign: boolean;
      digitalSignature: boolean;
    };
    expect([caUsage.keyCertSign, caUsage.digitalSignature]).toEqual([true, false]);

    const memberCert = new X509Certificate(member.outs?.certPem ?? "");
    expect(memberCert.ca).toBe(false);
    expect(memberCert.checkIssued(caCert)).toBe(true);
    expect(memberCert.verify(caCert.publicKey)).toBe(true);
    expect(memberCert.subjectAltName).toBe(
      "DNS:gw2, IP Address:198.51.100.21, IP Address:2001:DB8:20:0:0:0:0:21",
    );
    expect(memberCert.checkIP("198.51.100.21")).toBe("198.51.100.21");
    expect(memberCert.checkHost("gw2")).toBe("gw2");
    expect(memberCert.keyUsage).toEqual([SERVER_AUTH, CLIENT_AUTH]);
    expect(Date.parse(memberCert.validTo) - Date.now()).toBeGreaterThan(2.9 * YEAR);

    const clientCert = new X509Certificate(client.outs?.certPem ?? "");
    expect(clientCert.verify(caCert.publicKey)).toBe(true);
    expect(clientCert.keyUsage).toEqual([CLIENT_AUTH]);
    expect(clientCert.subjectAltName).toBeUndefined();

    // Each key is its certificate's, and the CA's key is not kept in a leaf's outputs.
    expect(memberCert.checkPrivateKey(createPrivateKey(member.outs?.keyPem ?? ""))).toBe(true);
    expect(Object.keys(member.outs ?? {})).not.toContain("caKeyPem");
    expect(member.id).toBe(`etcd-cert-${memberCert.serialNumber.toLowerCase()}`);
  }, 30_000);

  it("a new CA, address or usage replaces a leaf; the CA's key alone does not", async () => {
    const olds = {
      caCertPem: "ca1",
      commonName: "gw1",
      dnsNames: ["gw1"],
      ips: ["192.0.2.1"],
      usage: "member" as const,
      certPem: "c",
      keyPem: "k",
    };
    const diff = (change: object) =>
      etcdCertificateProvider().diff?.("id", olds, { ...olds, caKeyPem: "key", ...change });
    expect(await diff({})).toEqual({ changes: false, replaces: [] });
    expect(await diff({ caCertPem: "ca2" })).toEqual({ changes: true, replaces: ["caCertPem"] });
    expect(await diff({ ips: ["192.0.2.2"], usage: "client" })).toEqual({
      changes: true,
      replaces: ["ips", "usage"],
    });
    const ca = { commonName: "a", certPem: "c", keyPem: "k" };
    expect(await etcdCaProvider().diff?.("id", ca, { commonName: "b" })).toEqual({
      changes: true,
      replaces: ["commonName"],
    });
  });

  it("private keys are secret outputs; certificates are not", async () => {
    await pulumi.runtime.setMocks(planMocks("pki"), "cvm-tls-gateway", "pki", false);
    const ca = new EtcdCa("ca", { commonName: "pki etcd CA" });
    const leaf = new EtcdCertificate("leaf", { ca, commonName: "gw1", usage: "member" });
    expect(await pulumi.isSecret(ca.keyPem)).toBe(true);
    expect(await pulumi.isSecret(leaf.keyPem)).toBe(true);
    expect(await pulumi.isSecret(ca.certPem)).toBe(false);
    expect(await pulumi.isSecret(leaf.certPem)).toBe(false);
  });
});
