/**
 * A runtime generation for the hand-over test, in a process of its own as under systemd: the
 * handed-over listener is its fd 3, which it never accepts on and only passes to HAProxy. It
 * starts the HAProxy engine on the config file in argv[2] with the slots in argv[3] and the
 * registrations in argv[4] (`<id>:<app>:<ip>,…`, what a runtime loads from its state before
 * its data plane starts), and reads commands on stdin:
 * `add <id> <app> <ip>` registers an instance and answers `ok` once HAProxy holds it. SIGTERM
 * is a hand-over: HAProxy stays for the next generation.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { startHaproxyEngine } from "../../../gateway-runtime/engine/haproxy/engine.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";

const [file, slots, registered = ""] = process.argv.slice(2);
const config = parseGatewayConfig(JSON.parse(readFileSync(file as string, "utf8")), "child");
const directory = new MemoryDirectory();
for (const entry of registered.split(",").filter(Boolean)) {
  const [id = "", appId = "", ip = ""] = entry.split(":");
  directory.upsert({ id, appId, ip, lastHandshakeMs: Date.now() });
}
const engine = await startHaproxyEngine(
  config,
  { directory, log: silentLogger() },
  { fds: { tls: 3 }, slots: Number(slots), tickMs: 200 },
);
process.once("SIGTERM", () => {
  void engine.drain().then(() => process.exit(0));
});
createInterface({ input: process.stdin }).on("line", (line) => {
  const [verb, id, appId, ip] = line.split(" ");
  if (verb !== "add" || !id || !appId || !ip) return;
  directory.upsert({ id, appId, ip, lastHandshakeMs: Date.now() });
  void engine.reconciler.settle().then(() => process.stdout.write(`ok ${engine.process.pid}\n`));
});
process.stdout.write(`ready ${engine.process.pid} ${engine.process.adopted}\n`);
