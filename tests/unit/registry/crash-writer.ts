/**
 * Child process for crash.test.ts: registers, re-registers and removes instances in a loop, and
 * prints each change to stdout only after the store acknowledged it (i.e. after the fsync).
 * Usage: node --import tsx crash-writer.ts <state file> <run number>
 * Lines: `ready`, `registered <id> <ip>`, `removing <id>`, `removed <id>`.
 */
import { randomBytes } from "node:crypto";
import { FileRegistrationStore } from "../../../gateway-runtime/registry/store.js";
import { DEFAULT_PLAN } from "./net.js";

const [file, run] = process.argv.slice(2);
if (file === undefined || run === undefined) throw new Error("usage: crash-writer.ts <file> <run>");

// stdout is a pipe: writes are synchronous on Linux, so a printed line is out before a SIGKILL.
const say = (line: string) => process.stdout.write(`${line}\n`);
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
const newKey = () => randomBytes(32).toString("base64");

const store = await FileRegistrationStore.open(file, DEFAULT_PLAN);
say("ready");
for (let n = 0; ; ) {
  const durable = store.list();
  const touched = new Set<string>();
  const ops: Promise<void>[] = [];
  for (let k = 0; k < 8; k++) {
    const existing = durable.length > 0 ? pick(durable) : undefined;
    const roll = Math.random();
    if (existing && !touched.has(existing.instanceId) && durable.length > 1500 && roll < 0.5) {
      const id = existing.instanceId;
      touched.add(id);
      say(`removing ${id}`);
      ops.push(store.remove(id).then(() => void say(`removed ${id}`)));
    } else if (existing && !touched.has(existing.instanceId) && roll > 0.9) {
      const { instanceId, appId } = existing;
      touched.add(instanceId);
      ops.push(
        store
          .register({ instanceId, appId, publicKey: newKey() })
          .then((r) => void say(`registered ${instanceId} ${r.ip}`)),
      );
    } else {
      const instanceId = `r${run}-${n++}`;
      ops.push(
        store
          .register({ instanceId, appId: `app${n % 5}`, publicKey: newKey() })
          .then((r) => void say(`registered ${instanceId} ${r.ip}`)),
      );
    }
  }
  await Promise.all(ops);
}
