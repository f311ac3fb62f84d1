/**
 * A proxy worker (`gateway proxy-worker --config FILE`, started by the primary only): the data
 * plane alone, on the listening sockets it shares with the other workers, fed by the primary
 * with the instance directory and the ticket keys. It serves once it has both; it stops on
 * SIGTERM, and when the primary goes away.
 */
import { loadConfigFile } from "../config/index.js";
import { createLogger } from "../log/index.js";
import { type DataPlane, DrainingFlag, startDataPlane, TicketKeyRing } from "../proxy/index.js";
import { MemoryDirectory } from "../registry/index.js";
import { isMessage, type ToPrimary, type ToWorker } from "./messages.js";

export async function proxyWorkerCommand(file: string): Promise<number> {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write("gateway proxy-worker: only the gateway's own `run` starts workers\n");
    return 64;
  }
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
        if (plane) send({ type: "stats", id: message.id, snapshot: plane.snapshot() });
        break;
    }
    if (haveDirectory && haveKeys) fed();
  });

  send({ type: "hello" } satisfies ToPrimary);

  const stopped = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("disconnect", () => resolve("primary gone"));
  });
  await Promise.race([ready, stopped]);
  if (haveDirectory && haveKeys) {
    plane = await startDataPlane(config, { directory, log, ticketKeys, draining });
    send({ type: "ready" } satisfies ToPrimary);
    log.info("proxy worker serving");
  }
  const why = await stopped;
  log.info(`${why}: stopping`);
  await plane?.stop();
  if (process.connected) process.disconnect?.(); // the IPC channel would keep the process alive
  return 0;
}
