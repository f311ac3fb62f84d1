export {
  type DirectoryWriter,
  type PeerApplier,
  type RegisterOutcome,
  RegistrationService,
  type RegistrationServiceOptions,
  type RegistrationSettings,
  registrationSettings,
  type WgPeer,
} from "./service.js";
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
} from "../rpc/wire.js";
export type { PeerCertificate } from "../rpc/server.js";
export { type Registration, startRegistration } from "./start.js";
