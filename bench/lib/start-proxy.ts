/** A fresh process of one proxy target, as the options ask for it (`bench/run.ts`). */
import type { BuildOutput } from "./build.js";
import type { BenchOptions } from "./options.js";
import { startOursHaproxy } from "./ours-haproxy.js";
import {
  type Backend,
  type Env,
  type PROXIES,
  startHaproxy,
  startNginx,
  startNodeFloor,
  startOurs,
  type Target,
} from "./targets.js";

/** Ours and the Node floor run with the same node flags. */
export function proxyStarter(
  env: Env,
  backend: Backend,
  built: BuildOutput,
  base: { readonly gateway: string } | undefined,
  options: BenchOptions,
): (name: (typeof PROXIES)[number]) => Promise<Target> {
  return (name) => {
    const node = { nodeFlags: options.oursFlags, instances: options.instances };
    switch (name) {
      case "haproxy":
        return startHaproxy(env, backend);
      case "nginx":
        return startNginx(env, backend);
      case "ours":
        return startOurs(env, backend, {
          ...node,
          entry: built.gateway,
          ...(options.attemptDelay !== undefined ? { attemptDelay: options.attemptDelay } : {}),
          workers: options.workers,
        });
      case "ours-haproxy":
        return startOursHaproxy(env, backend, { ...node, entry: built.gateway });
      case "node":
        return startNodeFloor(env, backend, { ...node, entry: built.nodeFloor });
      case "base":
        if (!base && options.baseNode === undefined)
          throw new Error("the base target needs --base or --base-node");
        return startOurs(env, backend, {
          ...node,
          entry: base?.gateway ?? built.gateway,
          target: "base",
          ...(options.baseNode !== undefined ? { nodeBin: options.baseNode } : {}),
        });
    }
  };
}
