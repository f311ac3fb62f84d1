import { readGatewayConfig } from "./components/stack-config.js";

/**
 * The Pulumi program for one region stack. It validates `gateway:config` with the runtime's
 * schema first, so a bad stack fails before any resource is planned.
 */
export function gatewayProgram() {
  const config = readGatewayConfig();
  return {
    baseDomain: config.core.proxy.base_domain,
    rpcDomain: config.core.rpc_domain,
  };
}
