/**
 * The engine's gRPC face to the program: Pulumi's `ResourceMonitor` and `Engine` services on
 * loopback, as `@pulumi/pulumi` calls them. Registrations go to the `Deployment`; logs to the
 * run's log. Features the engine does not offer are answered "unsupported", and the SDK then
 * takes its older path for them, as it does with any monitor.
 */
import * as grpc from "@grpc/grpc-js";
import type { Deployment } from "./deployment.js";
import type { Provider } from "./providers/types.js";
import {
  Empty,
  type EngineServer,
  engineGrpc,
  enginePb,
  fromStruct,
  type ResourceMonitorServer,
  resourceGrpc,
  resourcePb,
  toStruct,
} from "./sdk.js";
import type { Props } from "./values.js";

/** Secrets (so secret config and outputs stay secret) and resource references. */
const FEATURES = new Set(["secrets", "resourceReferences"]);

export interface MonitorHooks {
  deployment: Deployment;
  /** The provider answering an invoke token (`cloudflare:index/getZone:getZone`). */
  invokeProvider: (token: string) => Promise<Provider>;
  log: (severity: "debug" | "info" | "warning" | "error", message: string, urn: string) => void;
  /** A registration failed: the run fails with it even if the program swallowed the error. */
  failed: (error: Error) => void;
}

const SEVERITY = ["debug", "info", "warning", "error"] as const;

function fail(error: unknown): grpc.ServiceError {
  const message = error instanceof Error ? error.message : String(error);
  return Object.assign(new Error(message), {
    code: grpc.status.UNKNOWN,
    details: message,
    metadata: new grpc.Metadata(),
  });
}

export interface Monitor {
  address: string;
  close(): Promise<void>;
}

export async function startMonitor(hooks: MonitorHooks): Promise<Monitor> {
  const { deployment } = hooks;
  const server = new grpc.Server();
  const monitorImpl: Partial<ResourceMonitorServer> = {
    supportsFeature(call, cb) {
      const resp = new resourcePb.SupportsFeatureResponse();
      resp.setHassupport(FEATURES.has(call.request.getId()));
      cb(null, resp);
    },
    registerResource(call, cb) {
      const req = call.request;
      deployment
        .register({
          type: req.getType(),
          name: req.getName(),
          custom: req.getCustom(),
          parent: req.getParent(),
          dependencies: req.getDependenciesList(),
          inputs: fromStruct(req.getObject()),
          additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
          replaceOnChanges: req.getReplaceonchangesList(),
          deleteBeforeReplace: req.getDeletebeforereplace(),
          aliases: req.getAliasurnsList(),
        })
        .then(
          ({ urn, id, outputs }) => {
            const resp = new resourcePb.RegisterResourceResponse();
            resp.setUrn(urn);
            resp.setId(id);
            resp.setObject(toStruct(outputs));
            cb(null, resp);
          },
          (error: unknown) => {
            hooks.failed(error instanceof Error ? error : new Error(String(error)));
            cb(fail(error));
          },
        );
    },
    registerResourceOutputs(call, cb) {
      deployment.registerOutputs(call.request.getUrn(), fromStruct(call.request.getOutputs()));
      cb(null, new Empty());
    },
    invoke(call, cb) {
      const token = call.request.getTok();
      hooks
        .invokeProvider(token)
        .then((p) => {
          if (!p.invoke) throw new Error(`no provider answers the invoke ${token}`);
          return p.invoke(token, fromStruct(call.request.getArgs()));
        })
        .then(
          (result: Props) => {
            const resp = new resourcePb.ResourceInvokeResponse();
            resp.setReturn(toStruct(result));
            cb(null, resp);
          },
          (error: unknown) => cb(fail(error)),
        );
    },
    signalAndWaitForShutdown(_call, cb) {
      cb(null, new Empty());
    },
  };
  const engineImpl: Partial<EngineServer> = {
    log(call, cb) {
      const req = call.request;
      hooks.log(SEVERITY[req.getSeverity()] ?? "info", req.getMessage(), req.getUrn());
      cb(null, new Empty());
    },
    getRootResource(_call, cb) {
      const resp = new enginePb.GetRootResourceResponse();
      resp.setUrn(deployment.rootUrn);
      cb(null, resp);
    },
    setRootResource(call, cb) {
      deployment.rootUrn = call.request.getUrn();
      cb(null, new enginePb.SetRootResourceResponse());
    },
    requirePulumiVersion(_call, cb) {
      cb(null, new enginePb.RequirePulumiVersionResponse());
    },
  };
  // Methods left out answer UNIMPLEMENTED, which the SDK reads as "not supported".
  server.addService(
    resourceGrpc.ResourceMonitorService,
    monitorImpl as grpc.UntypedServiceImplementation,
  );
  server.addService(engineGrpc.EngineService, engineImpl as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
      }),
  };
}
