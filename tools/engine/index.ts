/**
 * The recording engine: runs a Pulumi Node.js program through `@pulumi/pulumi`'s own language
 * entry and dynamic provider host, as `pulumi preview`, `pulumi up` and `pulumi destroy` do,
 * against a checkpoint file. Only the providers whose binaries cannot be installed here
 * (command, cloudflare) are stand-ins, given by the caller.
 */
import {
  type Deployment as DeploymentType,
  Deployment,
  type DeploymentOptions,
  DeploymentError,
  ROOT_STACK_TYPE,
} from "./deployment.js";
import { launchProgram, pwdMain, readProject } from "./launch.js";
import { startMonitor } from "./monitor.js";
import { startDynamicProvider } from "./providers/dynamic.js";
import type { Provider } from "./providers/types.js";
import { type Checkpoint, emptyCheckpoint, readCheckpoint, writeCheckpoint } from "./state.js";

export { readStackConfig, type StackConfig } from "./config.js";
export type { Registration, Step } from "./deployment.js";
export type { Provider } from "./providers/types.js";
export type { Checkpoint, ResourceState } from "./state.js";

export type Mode = "preview" | "up" | "destroy";

export interface RunOptions {
  /** The folder holding Pulumi.yaml. */
  projectDir: string;
  stack: string;
  mode: Mode;
  config: Record<string, string>;
  secretKeys: readonly string[];
  /** Where the state lives between runs; without it the run starts from `checkpoint` (or nothing) and writes nothing. */
  checkpointFile?: string;
  checkpoint?: Checkpoint;
  /** Providers by package (`command`, `cloudflare`); dynamic providers always run in the SDK's host. */
  providers: Record<string, Provider>;
  log?: (line: string) => void;
  prior?: DeploymentOptions["prior"];
}

export interface RunResult {
  deployment: DeploymentType;
  /** The stack's outputs (`export const ...` of the program). */
  outputs: Record<string, unknown>;
  state: Checkpoint;
}

const packageOf = (type: string) => type.split(":")[0] ?? "";

export async function run(options: RunOptions): Promise<RunResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const project = readProject(options.projectDir);
  const { pwd } = pwdMain(project);
  const preview = options.mode === "preview";
  const checkpoint =
    options.checkpoint ??
    (options.checkpointFile
      ? readCheckpoint(options.checkpointFile, options.stack)
      : emptyCheckpoint(options.stack));
  const errors: Error[] = [];
  let dynamic: Promise<Provider> | undefined;
  let engineAddress = "";
  const providerFor = async (type: string): Promise<Provider> => {
    const pkg = packageOf(type);
    if (pkg === "pulumi-nodejs") {
      dynamic ??= startDynamicProvider({
        pwd,
        engineAddress,
        env: {
          ...process.env,
          PULUMI_NODEJS_PROJECT: project.name,
          PULUMI_NODEJS_STACK: options.stack,
        },
        log: (line) => log(`  [pulumi-nodejs] ${line}`),
      });
      return dynamic;
    }
    const provider = options.providers[pkg];
    if (!provider)
      throw new DeploymentError(`no provider for package ${pkg} (resource type ${type})`);
    return provider;
  };
  const deployment = new Deployment({
    project: project.name,
    stack: options.stack,
    preview,
    pwd,
    checkpoint,
    persist: (state) => {
      if (options.checkpointFile) writeCheckpoint(options.checkpointFile, state);
    },
    providerFor,
    log,
    ...(options.prior ? { prior: options.prior } : {}),
  });
  const monitor = await startMonitor({
    deployment,
    invokeProvider: providerFor,
    log: (severity, message, urn) => {
      if (severity === "error") errors.push(new Error(message));
      if (severity !== "debug")
        log(`${severity}: ${urn ? `${urn.split("::").pop()}: ` : ""}${message}`);
    },
    failed: (error) => errors.push(error),
  });
  engineAddress = monitor.address;
  try {
    if (options.mode === "destroy") {
      await deployment.destroyAll();
    } else {
      const code = await launchProgram({
        project,
        stack: options.stack,
        monitor: monitor.address,
        engine: monitor.address,
        preview,
        config: options.config,
        secretKeys: options.secretKeys,
        output: (line) => log(`  | ${line}`),
      });
      if (errors.length > 0 || code !== 0) {
        const reasons = errors.map((e) => e.message).join("\n");
        throw new DeploymentError(
          `the program failed (exit ${code})${reasons ? `:\n${reasons}` : ""}`,
        );
      }
      await deployment.finish();
    }
  } finally {
    await monitor.close();
    await (await dynamic?.catch(() => undefined))?.close?.();
  }
  const root = [...deployment.registrations.entries()].find(([, r]) => r.type === ROOT_STACK_TYPE);
  return {
    deployment,
    outputs: (root ? deployment.outputs.get(root[0]) : undefined) ?? {},
    state: deployment.state(),
  };
}
