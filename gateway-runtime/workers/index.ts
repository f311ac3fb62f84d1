export { ProxyWorkers, type ProxyWorkersOptions, type WorkersSnapshot } from "./primary.js";
export { proxyWorkerCommand } from "./worker.js";
