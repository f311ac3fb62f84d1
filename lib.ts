// The library entry (package.json `exports`, and `main`, which Pulumi's plugin host loads):
// the component a program composes and the types of its args and outputs, nothing else a
// consumer would come to depend on. Importing it runs nothing and reads no stack config; this
// repository's own stacks start at index.ts instead.
export type { CustomDomain } from "./components/gateway-dns.js";
export {
  type GatewayConfigObject,
  GatewayRegion,
  type GatewayRegionArgs,
  RegionDns,
  type RegionHost,
  type RegionHostOutputs,
} from "./components/gateway-region.js";
export type { OperatorConfigInput } from "./gateway-runtime/config/index.js";
