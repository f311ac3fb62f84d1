// The lab's stand-in for systemd's socket units (lab/shims/systemctl; tests use it as well):
// binds each `name=address:port` once, keeps the sockets for as long as it runs, and hands them
// to every start of the service as systemd does, at fds 3, 4, ... with LISTEN_FDS and
// LISTEN_FDNAMES (the started script sets LISTEN_PID=$$ and execs the service, keeping its pid).
//   node socket-holder.mjs DIR name=address:port...
// SIGUSR1 starts `sh DIR/start` in a session of its own and writes its pid to DIR/main.pid.
// With HOLDER_RESTART_MS set (the unit's Restart=on-failure and RestartSec=), a start that ends
// uncleanly (an exit code other than 0, or a signal other than SIGHUP/INT/TERM/PIPE) is started
// again after that delay, as systemd does, unless DIR/stopping says a stop asked for the end.
// Unlike systemd it only binds: the first gateway to start calls listen(), so connections are
// refused until then, never after. The holder never listens itself, so it never accepts (a
// listening Node server would take connections off the queue the gateways share).
import { spawn } from "node:child_process";
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";

const [dir, ...specs] = process.argv.slice(2);
if (!dir || specs.length === 0) {
  process.stderr.write("usage: socket-holder.mjs DIR name=address:port...\n");
  process.exit(64);
}
const names = [];
const handles = [];
for (const spec of specs) {
  const m = /^([a-z]+)=\[?([0-9a-fA-F.:]+?)\]?:(\d+)$/.exec(spec);
  if (!m) throw new Error(`bad socket ${spec}`);
  const [, name, address, port] = m;
  // Node's own bind-only server handle (what node:cluster binds for its workers).
  const handle = net._createServerHandle(address, Number(port), net.isIPv6(address) ? 6 : 4);
  if (typeof handle === "number") throw new Error(`cannot bind ${spec}: errno ${handle}`);
  names.push(name);
  handles.push(handle);
}
const write = (file, text) => {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
};
const restartMs = process.env.HOLDER_RESTART_MS ? Number(process.env.HOLDER_RESTART_MS) : -1;
const stopping = join(dir, "stopping");
const CLEAN_SIGNALS = new Set(["SIGHUP", "SIGINT", "SIGTERM", "SIGPIPE"]);
/** The pending restart after an unclean end: a start meanwhile replaces it, as in systemd. */
let restartTimer;
/** The service's main process: only its end may lead to a restart. */
let current;
const start = () => {
  clearTimeout(restartTimer);
  restartTimer = undefined;
  rmSync(stopping, { force: true });
  const env = {
    ...process.env,
    LISTEN_FDS: String(handles.length),
    LISTEN_FDNAMES: names.join(":"),
  };
  delete env.HOLDER_RESTART_MS;
  const child = spawn("sh", [join(dir, "start")], {
    detached: true,
    stdio: ["ignore", "ignore", "ignore", ...handles],
    env,
  });
  child.unref();
  current = child;
  write(join(dir, "main.pid"), `${child.pid}\n`);
  child.once("exit", (code, signal) => {
    if (current !== child) return;
    if (existsSync(stopping)) return rmSync(stopping, { force: true });
    const unclean = signal ? !CLEAN_SIGNALS.has(signal) : code !== 0;
    if (!unclean || !(restartMs >= 0)) return;
    process.stderr.write(
      `socket holder: the service ended (${signal ?? code}): starting it again\n`,
    );
    restartTimer = setTimeout(
      () => (existsSync(stopping) ? rmSync(stopping, { force: true }) : start()),
      restartMs,
    );
  });
};
process.on("SIGUSR1", start);
process.on("SIGTERM", () => process.exit(0));
write(join(dir, "holder.pid"), `${process.pid}\n`);
setInterval(() => {}, 1 << 30);
