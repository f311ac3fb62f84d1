import * as command from "@pulumi/command";
import type { types } from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { DEFAULT_BUNDLE } from "./bundle.js";
import { configDigest, hostFiles, UNIT_DELETE } from "../host/files.js";
import { HOST_PATHS, type HostLayout, sha256 } from "../host/layout.js";
import { drainScript, gateScript, type RolloutSpec } from "../host/rollout.js";
import { asRoot, bundleOwnedBy, ROOT_USER } from "../host/sudo.js";
import {
  ETCD_RESTART,
  ETCD_UNIT_DELETE,
  type EtcdMemberSpec,
  type EtcdTlsPems,
  type EtcdTlsShape,
  etcdTlsScript,
  etcdTlsStdin,
  etcdUnitFile,
  etcdUnitScript,
} from "../host/etcd.js";

export interface GatewayHostArgs {
  /** Address SSH reaches the host at. */
  address: pulumi.Input<string>;
  /** SSH port; also kept open by the host firewall. @default 22 */
  sshPort?: pulumi.Input<number> | undefined;
  /** SSH user: root, or a user with passwordless sudo, through which every script runs as root. @default "root" */
  sshUser?: pulumi.Input<string> | undefined;
  /** SSH private key (PEM or OpenSSH), kept secret. @default none: the SSH agent is used */
  sshPrivateKey?: pulumi.Input<string> | undefined;
  /** The host's public key (`ssh-ed25519 AAAA...`); when set, any other key is refused. @default not checked */
  sshHostKey?: pulumi.Input<string> | undefined;
  /** The host's gateway.toml; a secret, sent on stdin only, written 0600. */
  configToml: pulumi.Input<string>;
  /** Ports and writable paths of this gateway, from `hostLayout(config)`. */
  layout: pulumi.Input<HostLayout>;
  /** The bundled runtime on the deployer's machine. @default this package's dist/gateway.mjs */
  bundlePath?: pulumi.Input<string> | undefined;
  /** sha256 of the bundle: a new value copies it again and restarts the gateway. */
  bundleSha256: pulumi.Input<string>;
  /** PEM of extra CAs the runtime trusts for the ACME directory (a private CA). @default none */
  acmeCaPem?: pulumi.Input<string> | undefined;
  /** PEM CA bundle CVM client certificates must chain to (attestation mode "ca"). @default none */
  attestationCaPem?: pulumi.Input<string> | undefined;
  /** Node.js major installed from NodeSource when the host's node is missing or older; at least `NODE_MAJOR`. @default 26 */
  nodeMajor?: pulumi.Input<number> | undefined;
  /** Bound on the wait for the restarted gateway to accept connections. @default 60 */
  readyTimeoutSeconds?: pulumi.Input<number> | undefined;
  /** The host's part of the region's etcd (`core.cluster`). @default none: no etcd steps */
  etcd?: GatewayHostEtcd | undefined;
  /** Host by host in a region of several hosts (host/rollout.ts). @default none: no drain or gate steps */
  rollout?: GatewayHostRollout | undefined;
}

export interface GatewayHostRollout {
  readonly spec: RolloutSpec;
  /** The previous host's gate: this host's drain, and so its update, waits for it. */
  readonly after?: pulumi.Resource | undefined;
}

export interface GatewayHostEtcd {
  /** The etcd member this host runs, when the program runs the region's etcd. */
  readonly member?: EtcdMemberSpec | undefined;
  /** Which TLS files the host gets. */
  readonly shape: EtcdTlsShape;
  /** Their PEM texts, a secret: sent on stdin only. */
  readonly pems: pulumi.Input<EtcdTlsPems>;
}

/**
 * One gateway host over SSH: idempotent setup (packages, user, directories, firewall), the
 * bundle, the config (0600, via stdin), a hardened systemd unit, and a restart that waits until
 * the gateway accepts connections. Steps run again only when their content hash changes.
 */
export class GatewayHost extends pulumi.ComponentResource {
  /** Completes once the restarted gateway accepts connections. */
  readonly ready: command.remote.Command;
  readonly setup: command.remote.Command;
  /** Installs the config from stdin (a secret). */
  readonly config: command.remote.Command;
  /** With `rollout`: completes once the updated host passed its health gates and is back in the region. */
  readonly gate: command.remote.Command | undefined;

  constructor(name: string, args: GatewayHostArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("gateway:index:GatewayHost", name, {}, opts);
    const sshUser = pulumi.output(args.sshUser ?? ROOT_USER);
    const connection: types.input.remote.ConnectionArgs = {
      host: args.address,
      port: args.sshPort ?? 22,
      user: sshUser,
      dialErrorLimit: 20,
      // The provider's own types take no explicit undefined for these two.
      ...(args.sshPrivateKey === undefined
        ? {}
        : { privateKey: pulumi.secret(args.sshPrivateKey) }),
      ...(args.sshHostKey === undefined ? {} : { hostKey: args.sshHostKey }),
    };
    const files = pulumi
      .all([
        args.layout,
        args.acmeCaPem,
        args.attestationCaPem,
        args.nodeMajor,
        args.readyTimeoutSeconds,
      ])
      .apply(([layout, acmeCaPem, attestationCaPem, nodeMajor, readyTimeoutSeconds]) =>
        hostFiles({
          layout,
          acmeCaPem,
          attestationCaPem,
          nodeMajor,
          readyTimeoutSeconds,
        }),
      );
    const toml = pulumi.secret(args.configToml);
    // A digest of the whole config, public on purpose: the hashed text holds a 256-bit WireGuard
    // private key, so the digest reveals nothing, and previews show when the config changes.
    const configHash = pulumi.unsecret(
      pulumi.all([toml, files.configScript]).apply(([text, script]) => configDigest(text, script)),
    );
    const child = { parent: this };
    // Every script, create and delete alike, runs as root whoever SSH logs in as.
    const rooted = (script: pulumi.Input<string>) =>
      pulumi.all([sshUser, script]).apply(([user, text]) => asRoot(text, user));
    const step = (
      suffix: string,
      props: Omit<command.remote.CommandArgs, "connection" | "addPreviousOutputInEnv">,
      extra: pulumi.CustomResourceOptions = {},
    ) =>
      new command.remote.Command(
        `${name}-${suffix}`,
        {
          connection,
          addPreviousOutputInEnv: false,
          ...props,
          ...(props.create === undefined ? {} : { create: rooted(props.create) }),
          ...(props.delete === undefined ? {} : { delete: rooted(props.delete) }),
        },
        { ...child, ...extra },
      );

    // The bundle is copied as the SSH user: a user other than root gets its file.
    this.setup = step("setup", {
      create: pulumi
        .all([files.setup, sshUser])
        .apply(([text, user]) => text + bundleOwnedBy(user)),
    });
    const etcd = args.etcd && etcdSteps(args.etcd, step, this.setup);
    // What restarts the gateway; the drain and the gate run again exactly when it does.
    const restartTriggers = [
      configHash,
      args.bundleSha256,
      files.unitDigest,
      ...(etcd?.triggers ?? []),
    ];
    // Host by host: the drain waits for the previous host's gate, and everything that changes
    // the gateway waits for the drain. The etcd steps stay outside the chain: on a first deploy
    // every member must start for the first gateway to reach quorum.
    const rollout = args.rollout;
    const drain =
      rollout &&
      step(
        "drain",
        { create: drainScript(rollout.spec), triggers: restartTriggers },
        { dependsOn: [this.setup, ...(rollout.after ? [rollout.after] : [])] },
      );
    const drained = drain ? [drain] : [];
    const bundle = new command.remote.CopyToRemote(
      `${name}-bundle`,
      {
        connection,
        source: pulumi
          .output(args.bundlePath ?? DEFAULT_BUNDLE)
          .apply((path) => new pulumi.asset.FileAsset(path)),
        remotePath: HOST_PATHS.bundle,
        triggers: [args.bundleSha256],
      },
      { ...child, dependsOn: [this.setup, ...drained] },
    );
    const config = step(
      "config",
      { create: files.configScript, stdin: toml, logging: "none", triggers: [configHash] },
      {
        dependsOn: [this.setup, bundle, ...drained, ...(etcd?.tls ? [etcd.tls] : [])],
        additionalSecretOutputs: ["stdin", "stdout", "stderr"],
      },
    );
    const unit = step(
      "unit",
      { create: files.unitScript, delete: UNIT_DELETE },
      { dependsOn: [this.setup, ...drained] },
    );
    this.ready = step(
      "restart",
      {
        create: files.restart,
        // A new etcd client certificate or CA is read at start only. The ids of the bundle and
        // config steps change whenever they run again: after a failed restart (a broken build)
        // the state holds this step as it was before, so rolling back to those values must
        // still restart, which the values alone would not tell.
        triggers: [...restartTriggers, bundle.id, config.id],
      },
      { dependsOn: [config, bundle, unit, ...drained, ...(etcd?.steps ?? [])] },
    );
    this.config = config;
    // The gate also runs again when the drain script changes, and after every restart: a
    // drained host always gets its gate, which is what lets it back in.
    this.gate =
      rollout &&
      step(
        "gate",
        {
          create: pulumi.output(args.layout).apply((layout) => gateScript(rollout.spec, layout)),
          triggers: [...restartTriggers, sha256(drainScript(rollout.spec)), this.ready.id],
        },
        { dependsOn: [this.ready] },
      );
    this.registerOutputs({ ready: this.ready.stdout });
  }
}

type Step = (
  suffix: string,
  props: Omit<command.remote.CommandArgs, "connection" | "addPreviousOutputInEnv">,
  extra?: pulumi.CustomResourceOptions,
) => command.remote.Command;

/**
 * The etcd steps of a host: `-etcd-tls` installs the TLS files from stdin (before the config
 * step, whose check reads them); with a member, `-etcd-unit` (no triggers, so never replaced:
 * its delete stops the member) and `-etcd-restart` on a new unit or new files.
 */
function etcdSteps(etcd: GatewayHostEtcd, step: Step, setup: command.remote.Command) {
  const { shape, member } = etcd;
  let tls: command.remote.Command | undefined;
  const triggers: pulumi.Input<string>[] = [];
  if (shape.member || shape.ca || shape.client) {
    const script = etcdTlsScript(shape);
    const stdin = pulumi.secret(pulumi.output(etcd.pems).apply((p) => etcdTlsStdin(shape, p)));
    // Public on purpose, as the config's: a digest of 2048-bit RSA keys reveals nothing.
    const digest = pulumi.unsecret(stdin.apply((text) => configDigest(text, script)));
    triggers.push(digest);
    tls = step(
      "etcd-tls",
      { create: script, stdin, logging: "none", triggers: [digest] },
      { dependsOn: [setup], additionalSecretOutputs: ["stdin", "stdout", "stderr"] },
    );
  }
  const steps = tls ? [tls] : [];
  if (member) {
    const unit = step(
      "etcd-unit",
      { create: etcdUnitScript(member), delete: ETCD_UNIT_DELETE },
      { dependsOn: [setup] },
    );
    const restart = step(
      "etcd-restart",
      { create: ETCD_RESTART, triggers: [...triggers, sha256(etcdUnitFile(member))] },
      { dependsOn: [unit, ...steps] },
    );
    steps.push(restart);
  }
  return { tls, steps, triggers };
}
