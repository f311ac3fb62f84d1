// The library entry (package.json `exports`, and `main`, which Pulumi's plugin host loads):
// the component a program composes and the types of its args. Importing it runs nothing and
// reads no stack config; this repository's own stacks start at index.ts instead.
export { type BundleInfo, DEFAULT_BUNDLE, readBundle } from "./components/bundle.js";
export type { CustomDomain } from "./components/gateway-dns.js";
export {
  GATEWAY_REGION_TYPE,
  type GatewayConfigObject,
  GatewayRegion,
  type GatewayRegionArgs,
  RegionDns,
  type RegionHost,
  type RegionHostOutputs,
} from "./components/gateway-region.js";
export type { OperatorConfigInput } from "./gateway-runtime/config/index.js";
