export {
  decodeHandshakes,
  encodeHandshakes,
  freshest,
  type HandshakeReport,
  reportPeriodMs,
} from "./handshakes.js";
export { NODE_TTL_S, NodeMembership, type MembershipOptions } from "./membership.js";
export {
  activeNodes,
  findNode,
  gatewayNodeInfo,
  type NodeRecord,
  type NodeStatus,
  type NodeView,
  nodeId,
  nodeUuid,
  parseNodeRecord,
  parseNodeStatus,
  wireGuardPeer,
} from "./node.js";
