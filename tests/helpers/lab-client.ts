import { spawn } from "node:child_process";
import type { TLSSocket } from "node:tls";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Runs a command from the checkout to completion (killed after `timeoutMs`); never throws. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { input?: string; timeoutMs?: number } = {},
) {
  return new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}

/** One HTTP/1.1 GET on an open TLS socket; resolves with the whole response once it ends. */
export function request(s: TLSSocket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const onData = (d: Buffer) => {
      text += d.toString();
      if (/\r\n\r\n[\s\S]*\n$/.test(text)) {
        s.off("data", onData);
        resolve(text);
      }
    };
    s.on("data", onData);
    s.once("error", reject);
    s.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
  });
}
