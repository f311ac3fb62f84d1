/**
 * The CVM agent (`gateway agent`): registers a WireGuard key with the gateway over mutual TLS
 * and keeps the tunnel the answer describes up. The dstack counterpart is dstack-util's
 * gateway setup and `gateway_checker`; this one runs on ordinary VMs and in tests.
 */
export { CvmAgent, type CvmAgentOptions } from "./agent.js";
export {
  type Action,
  Checker,
  type CheckerSettings,
  DEFAULT_CHECKER,
  type Observation,
} from "./checker.js";
export {
  AgentRpcError,
  type AgentRpcErrorCode,
  type GatewayClientOptions,
  registerCvm,
  registerUrl,
} from "./client.js";
export { agentCommand } from "./command.js";
export { type AgentKey, loadOrCreateKey } from "./key.js";
export { createWgLink, linkExists, type WgImplementation } from "./link.js";
export { type AgentOptions, agentHelp, type ParsedAgentArgs, parseAgentArgs } from "./options.js";
export {
  isEndpoint,
  PERSISTENT_KEEPALIVE_S,
  planFromResponse,
  renderTunnelConfig,
  type TunnelPeer,
  type TunnelPlan,
} from "./plan.js";
export { AgentTunnel, type TunnelOptions, type TunnelStatus } from "./tunnel.js";
