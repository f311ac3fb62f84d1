export {
  type DirectoryWriter,
  type PeerApplier,
  type PeerCertificate,
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
} from "./wire.js";
export { type Registration, startRegistration } from "./start.js";
