/**
 * Dynamic providers (`pulumi-nodejs:dynamic/...`) run in `@pulumi/pulumi`'s own provider host,
 * `cmd/dynamic-provider`, started as the engine starts the `pulumi-nodejs` plugin: a child
 * process given the engine's address, which prints the port of its ResourceProvider gRPC
 * service as its first line. The provider code is the closure text the SDK serialized into the
 * `__provider` input. The host does not accept secrets, so they are sent revealed (the engine
 * marks the outputs secret again).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import {
  fromStruct,
  type ProviderPb,
  providerGrpc,
  providerPb,
  sdkEntry,
  toStruct,
} from "../sdk.js";
import { type Props, revealProps } from "../values.js";
import { type CheckResult, type DiffResult, type Provider, ProviderError } from "./types.js";

export interface DynamicProviderOptions {
  /** The program directory: the host runs there and resolves `@pulumi/pulumi` from it. */
  pwd: string;
  engineAddress: string;
  env: NodeJS.ProcessEnv;
  /** Where the host's own output goes (the provider's console output and errors). */
  log: (line: string) => void;
}

type Callback<T> = (error: grpc.ServiceError | null, value?: T) => void;

function unary<Res>(
  method: (req: never, cb: Callback<Res>) => unknown,
  req: unknown,
  what: string,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    (method as (req: unknown, cb: Callback<Res>) => unknown)(req, (error, value) => {
      if (error || value === undefined) {
        reject(new ProviderError(`${what}: ${error?.details || error?.message || "no response"}`));
      } else resolve(value);
    });
  });
}

const toWire = (props: Props) => toStruct(revealProps(props));

export async function startDynamicProvider(options: DynamicProviderOptions): Promise<Provider> {
  const child: ChildProcess = spawn(
    process.execPath,
    [sdkEntry(options.pwd, "cmd/dynamic-provider"), options.engineAddress],
    { cwd: options.pwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const out = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", options.log);
  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new ProviderError("the dynamic provider host did not start within 30 s"));
    }, 30_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new ProviderError(`the dynamic provider host exited with ${code} before it listened`));
    });
    out.once("line", (line) => {
      clearTimeout(timer);
      resolve(line.trim());
    });
  });
  out.on("line", options.log);
  const client = new providerGrpc.ResourceProviderClient(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  );
  const configure = new providerPb.ConfigureRequest();
  configure.setArgs(toStruct({}));
  configure.setAcceptsecrets(true);
  configure.setAcceptresources(true);
  await unary<ProviderPb.ConfigureResponse>(
    client.configure.bind(client),
    configure,
    "Configure pulumi-nodejs",
  );

  const { DiffChanges } = providerPb.DiffResponse;
  return {
    async check({ urn, olds, news }): Promise<CheckResult> {
      const req = new providerPb.CheckRequest();
      req.setUrn(urn);
      req.setOlds(toWire(olds ?? {}));
      req.setNews(toWire(news));
      const resp = await unary<ProviderPb.CheckResponse>(
        client.check.bind(client),
        req,
        `Check ${urn}`,
      );
      return {
        inputs: fromStruct(resp.getInputs()),
        failures: resp
          .getFailuresList()
          .map((f) => ({ property: f.getProperty(), reason: f.getReason() })),
      };
    },
    async diff({ urn, id, olds, oldInputs, news }): Promise<DiffResult> {
      const req = new providerPb.DiffRequest();
      req.setUrn(urn);
      req.setId(id);
      req.setOlds(toWire(olds));
      req.setOldInputs(toWire(oldInputs));
      req.setNews(toWire(news));
      const resp = await unary<ProviderPb.DiffResponse>(
        client.diff.bind(client),
        req,
        `Diff ${urn}`,
      );
      const c = resp.getChanges();
      return {
        changes:
          c === DiffChanges.DIFF_SOME ? "some" : c === DiffChanges.DIFF_NONE ? "none" : "unknown",
        replaces: resp.getReplacesList(),
        deleteBeforeReplace: resp.getDeletebeforereplace(),
      };
    },
    async create({ urn, news, preview }) {
      const req = new providerPb.CreateRequest();
      req.setUrn(urn);
      req.setProperties(toWire(news));
      req.setPreview(preview);
      const resp = await unary<ProviderPb.CreateResponse>(
        client.create.bind(client),
        req,
        `Create ${urn}`,
      );
      return { id: resp.getId(), outputs: fromStruct(resp.getProperties()) };
    },
    async update({ urn, id, olds, oldInputs, news, preview }) {
      const req = new providerPb.UpdateRequest();
      req.setUrn(urn);
      req.setId(id);
      req.setOlds(toWire(olds));
      req.setOldInputs(toWire(oldInputs));
      req.setNews(toWire(news));
      req.setPreview(preview);
      const resp = await unary<ProviderPb.UpdateResponse>(
        client.update.bind(client),
        req,
        `Update ${urn}`,
      );
      return { outputs: fromStruct(resp.getProperties()) };
    },
    async delete({ urn, id, olds, oldInputs }) {
      const req = new providerPb.DeleteRequest();
      req.setUrn(urn);
      req.setId(id);
      req.setProperties(toWire(olds));
      req.setOldInputs(toWire(oldInputs));
      await unary<unknown>(client.delete.bind(client), req, `Delete ${urn}`);
    },
    async close() {
      client.close();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}
