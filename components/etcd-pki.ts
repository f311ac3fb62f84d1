import { fileURLToPath } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import type { IssuedPair, LeafRequest, LeafUsage } from "./x509.js";

/**
 * The compiled `components/x509.js` next to this module; the providers load it when they run,
 * for the same reason `WireGuardKey` loads the key generator by path: Pulumi serializes the
 * provider objects and runs them in a host of their own, where no import binding survives.
 */
export const X509_MODULE = fileURLToPath(new URL("./x509.js", import.meta.url));

type X509 = {
  issueCa(commonName: string): IssuedPair;
  issueLeaf(ca: IssuedPair, request: LeafRequest): IssuedPair;
};

export interface EtcdCaInputs {
  commonName: string;
}

export interface EtcdCaOutputs extends EtcdCaInputs {
  certPem: string;
  keyPem: string;
}

/**
 * The dynamic provider of `EtcdCa`. Rotation is a replacement (`pulumi up --replace` of the
 * resource): every `EtcdCertificate` takes the CA's certificate as an input, so each is
 * re-issued by the new CA in the same run, and every host gets its new files.
 */
export function etcdCaProvider(
  x509Module: string = X509_MODULE,
): pulumi.dynamic.ResourceProvider<EtcdCaInputs, EtcdCaOutputs> {
  return {
    async create(inputs) {
      const load = process.getBuiltinModule("node:module").createRequire(x509Module);
      const { certPem, keyPem } = (load(x509Module) as X509).issueCa(inputs.commonName);
      const { X509Certificate } = process.getBuiltinModule("node:crypto");
      // The id is in plain state: the serial number names the CA and says nothing of its key.
      return {
        id: `etcd-ca-${new X509Certificate(certPem).serialNumber.toLowerCase()}`,
        outs: { commonName: inputs.commonName, certPem, keyPem },
      };
    },
    async diff(_id, olds, news) {
      const changed = olds.commonName !== news.commonName;
      return { changes: changed, replaces: changed ? ["commonName"] : [] };
    },
  };
}

export interface EtcdCaArgs {
  /** The CA's subject. */
  commonName: pulumi.Input<string>;
}

/** A region's etcd CA (RSA 2048, 10 years); `keyPem` is a secret. */
export class EtcdCa extends pulumi.dynamic.Resource {
  declare readonly commonName: pulumi.Output<string>;
  declare readonly certPem: pulumi.Output<string>;
  declare readonly keyPem: pulumi.Output<string>;

  constructor(name: string, args: EtcdCaArgs, opts: pulumi.CustomResourceOptions = {}) {
    super(
      etcdCaProvider(),
      name,
      { commonName: args.commonName, certPem: undefined, keyPem: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["keyPem"] }),
      "gateway",
      "EtcdCa",
    );
    // Secret in this program too, also where additionalSecretOutputs is not applied (mocks).
    this.keyPem = pulumi.secret(this.keyPem);
  }
}

export interface EtcdCertificateInputs {
  caCertPem: string;
  /** The CA's key signs; it is an input only, never kept in this resource's outputs. */
  caKeyPem: string;
  commonName: string;
  dnsNames: string[];
  ips: string[];
  usage: LeafUsage;
}

export interface EtcdCertificateOutputs extends Omit<EtcdCertificateInputs, "caKeyPem"> {
  certPem: string;
  keyPem: string;
}

const LEAF_KEYS = ["caCertPem", "commonName", "dnsNames", "ips", "usage"] as const;

/**
 * The dynamic provider of `EtcdCertificate`. Any change (a new CA, an address, the usage)
 * replaces the certificate and its key; rotation is a replacement too, as for the CA.
 */
export function etcdCertificateProvider(
  x509Module: string = X509_MODULE,
): pulumi.dynamic.ResourceProvider<EtcdCertificateInputs, EtcdCertificateOutputs> {
  return {
    async create(inputs) {
      const load = process.getBuiltinModule("node:module").createRequire(x509Module);
      const { caCertPem, caKeyPem, ...request } = inputs;
      const ca = { certPem: caCertPem, keyPem: caKeyPem };
      const { certPem, keyPem } = (load(x509Module) as X509).issueLeaf(ca, request);
      const { X509Certificate } = process.getBuiltinModule("node:crypto");
      return {
        id: `etcd-cert-${new X509Certificate(certPem).serialNumber.toLowerCase()}`,
        outs: { caCertPem, ...request, certPem, keyPem },
      };
    },
    async diff(_id, olds, news) {
      const replaces = LEAF_KEYS.filter(
        (key) => JSON.stringify(olds[key]) !== JSON.stringify(news[key]),
      );
      return { changes: replaces.length > 0, replaces: [...replaces] };
    },
  };
}

export interface EtcdCertificateArgs {
  ca: EtcdCa;
  commonName: pulumi.Input<string>;
  dnsNames?: pulumi.Input<string[]> | undefined;
  ips?: pulumi.Input<string[]> | undefined;
  usage: LeafUsage;
}

/**
 * A certificate the region's etcd CA signs (RSA 2048, 3 years): a member's (serverAuth and
 * clientAuth, with the host's addresses and name) or the gateway's (clientAuth). `keyPem` is
 * a secret; the CA's key reaches the provider as a secret input and is not kept in the outputs.
 */
export class EtcdCertificate extends pulumi.dynamic.Resource {
  declare readonly certPem: pulumi.Output<string>;
  declare readonly keyPem: pulumi.Output<string>;

  constructor(name: string, args: EtcdCertificateArgs, opts: pulumi.CustomResourceOptions = {}) {
    super(
      etcdCertificateProvider(),
      name,
      {
        caCertPem: args.ca.certPem,
        caKeyPem: pulumi.secret(args.ca.keyPem),
        commonName: args.commonName,
        dnsNames: args.dnsNames ?? [],
        ips: args.ips ?? [],
        usage: args.usage,
        certPem: undefined,
        keyPem: undefined,
      },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["keyPem"] }),
      "gateway",
      "EtcdCertificate",
    );
    this.keyPem = pulumi.secret(this.keyPem);
  }
}
