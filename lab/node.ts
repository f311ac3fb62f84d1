import { join } from "node:path";
import { sh } from "./exec.js";

const ROOT = new URL("..", import.meta.url).pathname;
let cached: string | undefined;

/**
 * The directory holding the node the gateway hosts run (`.node-version`), fetched by
 * `scripts/node.sh` when this machine lacks it: the lab's gateway host and CVMs run on it
 * whatever node started the lab, so the lab deploys what a real host gets.
 */
export async function labNodeDir(): Promise<string> {
  cached ??= (await sh("bash", [join(ROOT, "scripts/node.sh")], { timeoutMs: 600_000 })).trim();
  return cached;
}

/** The node binary in `labNodeDir()`. */
export async function labNode(): Promise<string> {
  return join(await labNodeDir(), "node");
}
