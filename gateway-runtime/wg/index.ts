export {
  type CommandResult,
  type CommandRunner,
  CommandError,
  execRunner,
  prefixedRunner,
} from "./exec.js";
export { decodeWgKey, generateWgKeyPair, isWgKey, wgPublicKey } from "../keys/wireguard.js";
export { WireGuardManager, type WgErrorCode, type WireGuardManagerOptions } from "./manager.js";
export {
  checkWgPeers,
  parseWgDump,
  renderWgConfig,
  type WgInterfaceConfig,
  type WgPeer,
  type WgPeerStatus,
  type WgRenderErrorCode,
} from "./render.js";
export { WireguardGoProcess } from "./userspace.js";
