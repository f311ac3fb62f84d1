/**
 * A proxy worker (`gateway proxy-worker --config FILE`, started by the primary only): the data
 * plane alone, on the listening sockets it shares with the other workers (handed over by the
 * primary as descriptors, or node:cluster's shared port), fed by the primary with the instance
 * directory and the ticket keys. It serves once it has both.
 * When the primary goes away (a hand-over, or the main process killed) it serves on until the
 * next generation is ready (next-generation.ts), then drains: stops accepting, relays its open
 * connections to their end or for at most `core.proxy.drain_timeout`, logs how many it had to
 * cut, and exits. So the connections it holds outlive the main process that started it. A
 * SIGTERM of its own drains at once.
 */
import cluster from "node:cluster";
import { loadConfigFile } from "../config/index.js";
import { inheritedListeners } from "../listen/index.js";
import { createLogger } from "../log/index.js";
import { type DataPlane, DrainingFlag, startDataPlane, TicketKeyRing } from "../proxy/index.js";
import { MemoryDirectory } from "../registry/index.js";
import { isMessage, type ToPrimary, type ToWorker } from "./messages.js";
import { NEXT_GENERATION_WAIT_MS, nextGeneration } from "./next-generation.js";

export async function proxyWorkerCommand(file: string, readyFile?: string): Promise<number> {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write("gateway proxy-worker: only the gateway's own `run` starts workers\n");
    return 64;
  }
  // node:cluster ends a worker at once when its primary disconnects without saying so first
  // (the primary killed, or gone in a hand-over): the open connections must outlive it.
  if (cluster.worker) cluster.worker.exitedAfterDisconnect = true;
  const primaryPid = process.ppid;
  const fds = inheritedListeners();
  const config = loadConfigFile(file);
  const log = createLogger(config.log_level).child({ worker: process.pid });
  const directory = new MemoryDirectory();
  const ticketKeys = new TicketKeyRing();
  const draining = new DrainingFlag();
  let plane: DataPlane | undefined;
  let haveDirectory = false;
  let haveKeys = false;
  let fed: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    fed = resolve;
  });

  process.on("message", (message: unknown) => {
    if (!isMessage<ToWorker>(message)) return;
    switch (message.type) {
      case "directory":
        directory.replaceAll(message.instances);
        haveDirectory = true;
        break;
      case "ticket-keys":
        ticketKeys.load(message.keys);
        plane?.terminator.ticketKeysChanged();
        haveKeys = true;
        break;
      case "draining":
        draining.set(message.draining);
        break;
      case "reload-certificate":
        void plane?.terminator.reload();
        break;
      case "stats":
        if (plane) {
          const id = message.id;
          // The histograms are read asynchronously; the channel may close meanwhile (a
          // hand-over), and a throw here must not end a draining worker.
          void plane
            .snapshot()
            .then((snapshot) => process.connected && send({ type: "stats", id, snapshot }))
            .catch(() => undefined);
        }
        break;
    }
    if (haveDirectory && haveKeys) fed();
  });

  send({ type: "hello" } satisfies ToPrimary);

  const signalled = new AbortController();
  const stopped = new Promise<string>((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      process.once(signal, () => {
        signalled.abort();
        resolve(signal);
      });
    }
    process.once("disconnect", () => resolve("primary gone"));
  });
  await Promise.race([ready, stopped]);
  if (haveDirectory && haveKeys) {
    plane = await startDataPlane(config, { directory, log, ticketKeys, draining }, { fds });
    send({ type: "ready" } satisfies ToPrimary);
    log.info("proxy worker serving");
  }
  const why = await stopped;
  if (plane && why === "primary gone" && readyFile !== undefined) {
    log.info(
      { readyFile, waitMs: NEXT_GENERATION_WAIT_MS },
      "primary gone: serving on until the next generation is ready",
    );
    const next = await nextGeneration({
      readyFile,
      previousPid: primaryPid,
      signal: signalled.signal,
    });
    log.info(
      next === "ready"
        ? "the next generation is ready: draining"
        : next === "timeout"
          ? "no next generation in time: draining"
          : "signalled while waiting for the next generation: draining",
    );
  }
  if (plane) {
    const drainMs = config.core.proxy.drain_timeout;
    log.info({ drainTimeoutMs: drainMs }, `${why}: draining (no new connections)`);
    const cut = await plane.drain(drainMs);
    const line = { cut, drainTimeoutMs: drainMs };
    if (cut > 0) log.warn(line, `drained: cut ${cut} connections still open at drain_timeout`);
    else log.info(line, "drained: every connection ended by itself");
  }
  if (process.connected) process.disconnect?.(); // the IPC channel would keep the process alive
  return 0;
}
