export { type RpcErrorCode, statusFor } from "./http.js";
export {
  type PeerCertificate,
  type RegistrationHandler,
  RpcServer,
  type RpcServerOptions,
} from "./server.js";
export {
  type GatewayNodeInfo,
  type GuestAgentConfig,
  type InfoResponse,
  type PortPolicy,
  portPolicySchema,
  type RegisterCvmRequest,
  type RegisterCvmResponse,
  registerCvmRequestSchema,
  type WireGuardPeer,
} from "./wire.js";
