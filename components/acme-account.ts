import { createRequire } from "node:module";
import * as pulumi from "@pulumi/pulumi";
import type * as Acme from "acme-client";

/** acme-client's entry file as resolved from this module; the provider requires it when it runs. */
export const ACME_CLIENT_MODULE = createRequire(import.meta.url).resolve("acme-client");

export interface AcmeAccountInputs {
  directoryUrl: string;
  email: string;
  /** PEM of extra CAs trusted for the directory (a private CA such as pebble); "" for none. */
  caPem: string;
  /** An existing account's PEM key to find that account; "" to register a new one. */
  accountKey: string;
}

export interface AcmeAccountOutputs extends AcmeAccountInputs {
  accountUrl: string;
}

/**
 * The dynamic provider of `AcmeAccount`. Self-contained like every dynamic provider here: it
 * captures only `acmeModule` (a path, so tests can put a fake ACME client there) and loads
 * acme-client and node's modules at run time. A private CA is trusted through an `https.Agent`
 * on acme-client's axios instance (one per provider process, set before every call).
 */
export function acmeAccountProvider(
  acmeModule: string = ACME_CLIENT_MODULE,
): pulumi.dynamic.ResourceProvider<AcmeAccountInputs, AcmeAccountOutputs> {
  const load = (caPem: string): typeof Acme => {
    const acme = process.getBuiltinModule("node:module").createRequire(acmeModule)(
      acmeModule,
    ) as typeof Acme;
    const https = process.getBuiltinModule("node:https");
    const tls = process.getBuiltinModule("node:tls");
    acme.axios.defaults.httpsAgent =
      caPem === "" ? undefined : new https.Agent({ ca: [...tls.rootCertificates, caPem] });
    return acme;
  };
  const contact = (email: string) => ({ contact: [`mailto:${email}`] });
  return {
    async create(inputs) {
      const acme = load(inputs.caPem);
      const accountKey =
        inputs.accountKey !== ""
          ? inputs.accountKey
          : (await acme.crypto.createPrivateEcdsaKey("P-256")).toString();
      const client = new acme.Client({ directoryUrl: inputs.directoryUrl, accountKey });
      // With a key the CA already knows, this finds that account (HTTP 200) and updates its
      // contact; acme-client then sends the contact as an update, which needs it set.
      await client.createAccount({ termsOfServiceAgreed: true, ...contact(inputs.email) });
      const accountUrl = client.getAccountUrl();
      return { id: accountUrl, outs: { ...inputs, accountKey, accountUrl } };
    },
    async diff(_id, olds, news) {
      const replaces: string[] = [];
      if (olds.directoryUrl !== news.directoryUrl) replaces.push("directoryUrl");
      if (news.accountKey !== "" && news.accountKey !== olds.accountKey) {
        replaces.push("accountKey");
      }
      const updates = olds.email !== news.email || olds.caPem !== news.caPem;
      return { changes: replaces.length > 0 || updates, replaces };
    },
    async update(_id, olds, news) {
      if (olds.email !== news.email) {
        const acme = load(news.caPem);
        const client = new acme.Client({
          directoryUrl: olds.directoryUrl,
          accountKey: olds.accountKey,
          accountUrl: olds.accountUrl,
        });
        await client.updateAccount(contact(news.email));
      }
      return { outs: { ...olds, email: news.email, caPem: news.caPem } };
    },
    // No delete: an ACME account cannot be deleted, and deactivating it is irreversible.
  };
}

export interface AcmeAccountArgs {
  /** The ACME directory URL. */
  directoryUrl: pulumi.Input<string>;
  /** Contact address registered with the account. */
  email: pulumi.Input<string>;
  /**
   * PEM of extra CA certificates trusted for the directory, for a private CA such as pebble.
   * @default "" (the system's roots only)
   */
  caPem?: pulumi.Input<string> | undefined;
  /**
   * The PEM private key of an existing account, to find and keep it instead of registering one.
   * @default "" (a new P-256 key and account)
   */
  accountKey?: pulumi.Input<string> | undefined;
}

/** One ACME account per region: its URL feeds the CAA records and the runtime's certificate manager. */
export class AcmeAccount extends pulumi.dynamic.Resource {
  declare readonly accountUrl: pulumi.Output<string>;
  /** The account's PEM private key (a secret). */
  declare readonly accountKey: pulumi.Output<string>;
  declare readonly directoryUrl: pulumi.Output<string>;

  constructor(name: string, args: AcmeAccountArgs, opts: pulumi.CustomResourceOptions = {}) {
    super(
      acmeAccountProvider(),
      name,
      {
        directoryUrl: args.directoryUrl,
        email: args.email,
        caPem: args.caPem ?? "",
        accountKey: args.accountKey === undefined ? "" : pulumi.secret(args.accountKey),
        accountUrl: undefined,
      },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["accountKey"] }),
      "gateway",
      "AcmeAccount",
    );
    this.accountKey = pulumi.secret(this.accountKey);
  }
}
