export { RegistrationLatency } from "./latency.js";
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
export { type Registration, startRegistration } from "./start.js";
