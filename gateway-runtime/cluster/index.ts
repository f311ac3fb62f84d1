export { ProxyWorkers, type ProxyWorkersOptions } from "./primary.js";
export { proxyWorkerCommand } from "./worker.js";
