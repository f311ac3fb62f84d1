/**
 * What the bench's own Node proxies (`gateway-bench.ts`, `node-floor.ts`) share: the memory
 * report scenario (g) asks for, and waiting for the signal that stops them.
 */
import { writeFileSync } from "node:fs";

/** With a file, SIGUSR2 writes `process.memoryUsage()` there (scenario g splits RSS with it). */
export function reportMemoryOnSignal(file: string | undefined): void {
  if (file) process.on("SIGUSR2", () => writeFileSync(file, JSON.stringify(process.memoryUsage())));
}

/** Resolves with the name of the first SIGTERM or SIGINT. */
export function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
}
