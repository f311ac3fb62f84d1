/**
 * A hand-over as systemd runs it: the TLS port is a listening socket the runtime is handed as
 * fd 3 and passes to HAProxy (`bind fd@3`). The runtime generation exits (SIGTERM, the unit's
 * `KillMode=process`), HAProxy keeps serving its open streams, and the next generation adopts
 * it; the listener survives HAProxy's seamless reload (a slot pool that ran out).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawCommand } from "../../../gateway-runtime/engine/haproxy/api.js";
import { createCa, issueLeaf, type TestCa } from "../../../testkit/certs.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import {
  type Backend,
  backend,
  type Lab,
  loopbackIp,
  request,
  stream,
  TEST_DOMAIN,
} from "./harness.js";

const CHILD = join(import.meta.dirname, "runtime-child.ts");
const at = (label: string) => `${label}.${TEST_DOMAIN}`;

interface Generation {
  readonly child: ChildProcess;
  /** The next line the child writes. */
  line(): Promise<string>;
  send(text: string): void;
}

describe("HAProxy engine: hand-over with a socket from systemd", () => {
  const dir = mkdtempSync(join(tmpdir(), "hx-handover-"));
  let ca: TestCa;
  let configFile: string;
  let fd: number;
  let lab: Pick<Lab, "port" | "ca">;
  const generations: Generation[] = [];
  const backends: Backend[] = [];
  const ip = loopbackIp();

  /** A runtime generation holding `listenFd` as its fd 3, with these registrations loaded. */
  function generation(listenFd: number, registered = ""): Generation {
    const child = spawn(process.execPath, ["--import", "tsx", CHILD, configFile, "1", registered], {
      stdio: ["pipe", "pipe", "inherit", listenFd],
    });
    const lines: string[] = [];
    const waiting: ((line: string) => void)[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const next = waiting.shift();
      if (next) next(line);
      else lines.push(line);
    });
    const g: Generation = {
      child,
      line: () =>
        new Promise((resolve, reject) => {
          const ready = lines.shift();
          if (ready !== undefined) return resolve(ready);
          const timer = setTimeout(() => reject(new Error("child: no line in 20 s")), 20_000);
          waiting.push((line) => {
            clearTimeout(timer);
            resolve(line);
          });
        }),
      send: (text) => child.stdin?.write(`${text}\n`),
    };
    generations.push(g);
    return g;
  }

  beforeAll(async () => {
    ca = createCa();
    const leaf = issueLeaf(ca);
    // The listening socket stands in for gateway-tls.socket. This process lets go of it once
    // the first generation has it: a process that polls it would take connections too.
    const listener = createServer();
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const port = (listener.address() as { port: number }).port;
    fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
    let raw = minimalConfig();
    for (const [path, value] of Object.entries({
      "core.state_path": join(dir, "state.json"),
      "core.proxy.listen_addr": "127.0.0.1",
      "core.proxy.listen_port": port,
      "core.proxy.http_redirect": false,
      "core.proxy.cert_chain": leaf.certFile,
      "core.proxy.cert_key": leaf.keyFile,
      "core.proxy.base_domain": TEST_DOMAIN,
    })) {
      raw = withKey(raw, path, value);
    }
    configFile = join(dir, "config.json");
    writeFileSync(configFile, JSON.stringify(raw));
    lab = { port, ca };
    backends.push(await backend("one", ip, 80));
    const first = generation(fd);
    expect(await first.line()).toMatch(/^ready \d+ false$/);
    listener.close();
  });

  afterAll(async () => {
    for (const g of generations) g.child.kill("SIGKILL");
    const master = join(dir, "haproxy", "master.sock");
    const pid = Number(
      (await rawCommand(master, "show proc").catch(() => "")).match(/^(\d+)\s+master/m)?.[1],
    );
    if (pid > 0) process.kill(pid, "SIGTERM");
    for (const b of backends) await b.close();
    ca?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps serving through a runtime hand-over and a reload, from the handed-over socket", async () => {
    const first = generations[0] as Generation;
    first.send(`add 01 a1a1a1 ${ip}`);
    const pid = (await first.line()).split(" ")[1];
    expect((await request(lab as Lab, at("a1a1a1"))).text).toBe("one 80 pp=- ping");
    const held = await stream(lab as Lab, at("a1a1a1"));
    await held.ping("1");
    // The runtime exits; HAProxy does not.
    first.child.kill("SIGTERM");
    await new Promise((resolve) => first.child.once("exit", resolve));
    expect(await held.ping("2")).toBe("one 80 pp=- 2");
    expect((await request(lab as Lab, at("a1a1a1"))).text).toBe("one 80 pp=- ping");
    // systemd would hand it the same socket; this process let go of it, so a stand-in that
    // nobody connects to (the adopting generation only passes it to `haproxy -c`).
    const standIn = createServer();
    await new Promise<void>((resolve) => standIn.listen(0, "127.0.0.1", resolve));
    const standInFd = (standIn as unknown as { _handle: { fd: number } })._handle.fd;
    const second = generation(standInFd, `01:a1a1a1:${ip}`);
    expect(await second.line()).toBe(`ready ${pid} true`);
    // One slot, a second app: a seamless reload, which takes the listener over.
    second.send(`add 02 b2b2b2 ${ip}`);
    expect(await second.line()).toBe(`ok ${pid}`);
    expect((await request(lab as Lab, at("b2b2b2"))).text).toBe("one 80 pp=- ping");
    expect((await request(lab as Lab, at("a1a1a1"))).text).toBe("one 80 pp=- ping");
    expect(await held.ping("3")).toBe("one 80 pp=- 3");
    held.close();
    standIn.close();
  });
});
