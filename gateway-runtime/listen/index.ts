export {
  forWorker,
  handedOver,
  inheritedListeners,
  type ListenFds,
  type ListenName,
  listenOn,
  WORKER_LISTEN_VAR,
} from "./activation.js";
