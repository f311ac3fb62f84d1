import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { stopChild } from "../../testkit/process.js";

export interface SilentAddress {
  close(): Promise<void>;
}

/**
 * Makes `host:port` (a loopback address) swallow connects: a listener with backlog 1 in a
 * child process that blocks its event loop, so it never accepts, and connections of ours that
 * fill its accept queue. From then on the kernel drops SYNs to it, as for a CVM that died.
 */
export async function silentAddress(host: string, port: number): Promise<SilentAddress> {
  const proc: ChildProcess = spawn(process.execPath, [
    "-e",
    `require("node:net").createServer().listen({ host: ${JSON.stringify(host)}, port: ${port}, backlog: 1 }, () => {
       process.stdout.write("ready\\n");
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
     });`,
  ]);
  const fillers: Socket[] = [];
  const close = async () => {
    for (const s of fillers) s.destroy();
    await stopChild(proc);
  };
  try {
    await once(proc.stdout as NodeJS.ReadableStream, "data");
    for (let k = 0; k < 20; k++) {
      const s = connect({ host, port });
      s.on("error", () => {});
      fillers.push(s);
      const answered = await Promise.race([
        once(s, "connect").then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 300)),
      ]);
      if (!answered) return { close };
    }
    throw new Error(`the listener on ${host}:${port} kept accepting: cannot make it silent`);
  } catch (error) {
    await close();
    throw error;
  }
}
