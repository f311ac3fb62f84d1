/**
 * The engine's side of Pulumi's wire protocol: the generated gRPC services and messages that
 * ship in `@pulumi/pulumi/proto` (CommonJS, loaded with `require` and typed by their .d.ts).
 */
import { createRequire } from "node:module";
import type * as EngineGrpc from "@pulumi/pulumi/proto/engine_grpc_pb.js";
import type * as EnginePb from "@pulumi/pulumi/proto/engine_pb.js";
import type * as ProviderGrpc from "@pulumi/pulumi/proto/provider_grpc_pb.js";
import type * as ProviderPb from "@pulumi/pulumi/proto/provider_pb.js";
import type * as ResourceGrpc from "@pulumi/pulumi/proto/resource_grpc_pb.js";
import type * as ResourcePb from "@pulumi/pulumi/proto/resource_pb.js";
import type * as StructPb from "google-protobuf/google/protobuf/struct_pb.js";
import type * as EmptyPb from "google-protobuf/google/protobuf/empty_pb.js";
import type { Props } from "./values.js";

const require = createRequire(import.meta.url);

export const resourceGrpc =
  require("@pulumi/pulumi/proto/resource_grpc_pb.js") as typeof ResourceGrpc;
export const resourcePb = require("@pulumi/pulumi/proto/resource_pb.js") as typeof ResourcePb;
export const engineGrpc = require("@pulumi/pulumi/proto/engine_grpc_pb.js") as typeof EngineGrpc;
export const enginePb = require("@pulumi/pulumi/proto/engine_pb.js") as typeof EnginePb;
export const providerGrpc =
  require("@pulumi/pulumi/proto/provider_grpc_pb.js") as typeof ProviderGrpc;
export const providerPb = require("@pulumi/pulumi/proto/provider_pb.js") as typeof ProviderPb;
const { Struct } = require("google-protobuf/google/protobuf/struct_pb.js") as typeof StructPb;
export const { Empty } = require("google-protobuf/google/protobuf/empty_pb.js") as typeof EmptyPb;

export type Struct = StructPb.Struct;
export type ResourceMonitorServer = ResourceGrpc.IResourceMonitorServer;
export type EngineServer = EngineGrpc.IEngineServer;
export type { ProviderPb };

export const toStruct = (props: Props): StructPb.Struct =>
  Struct.fromJavaScript(props as Parameters<typeof Struct.fromJavaScript>[0]);

export const fromStruct = (s: StructPb.Struct | undefined): Props =>
  (s?.toJavaScript() ?? {}) as Props;

/** Where `@pulumi/pulumi` entry scripts are, resolved from the program directory as the language host does. */
export function sdkEntry(pwd: string, entry: "cmd/run" | "cmd/dynamic-provider"): string {
  return createRequire(`${pwd}/`).resolve(`@pulumi/pulumi/${entry}/index.js`);
}
