/**
 * Switching an engine back to Node: the generation that starts on the Node engine finds the
 * HAProxy a previous (haproxy-engine) generation left running for adoption. Nobody would adopt
 * it, and on handed-over sockets it would go on accepting beside the Node workers, with routes
 * no one updates. It is soft-stopped instead: no new connection, the open ones run to their end.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { retireHaproxy } from "../../../gateway-runtime/engine/haproxy/process.js";
import { watchHandOver } from "../../../gateway-runtime/engine/haproxy/watch.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { until } from "../../../testkit/poll.js";
import { isAlive } from "../../../testkit/process.js";
import {
  type Backend,
  backend,
  type Lab,
  loopbackIp,
  startLab,
  stream,
  TEST_DOMAIN,
} from "./harness.js";

const APP = "a1a1a1";

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });

describe("HAProxy engine: retiring a left-over HAProxy", () => {
  let lab: Lab;
  let one: Backend;

  beforeAll(async () => {
    lab = await startLab();
    one = await backend("one", loopbackIp(), 80);
    await lab.add("01", APP, one.ip);
  });

  afterAll(async () => {
    await lab?.close();
    await one?.close();
  });

  it("soft-stops it: new connections refused, an open stream runs to its end, then it exits", async () => {
    const held = await stream(lab, `${APP}.${TEST_DOMAIN}`);
    expect(await held.ping("1")).toBe("one 80 pp=- 1");
    const { master } = await lab.engine.process.procs();
    await lab.engine.drain(); // a hand-over: HAProxy left for the next generation
    expect(await retireHaproxy(lab.dir, silentLogger())).toBe(master);
    await until("the listener to close", () => refused(lab.port), 10_000);
    expect(await held.ping("2")).toBe("one 80 pp=- 2");
    expect(isAlive(master)).toBe(true);
    held.close();
    await until(
      "the master to exit once its last connection ended",
      () => !isAlive(master),
      15_000,
    );
    expect(await retireHaproxy(lab.dir, silentLogger())).toBeUndefined();
  });

  it("after a hand-over with no next generation (a stop), the watcher stops HAProxy; with one, it does not", async () => {
    const next = await startLab();
    try {
      const { master } = await next.engine.process.procs();
      await next.engine.drain();
      const readyFile = join(next.stateDir, "ready");
      writeFileSync(readyFile, `${process.pid}\n`);
      const opts = { dir: next.dir, readyFile, previousPid: process.pid, timeoutMs: 300 };
      writeFileSync(readyFile, "4194304\n"); // a next generation
      expect(await watchHandOver(opts, silentLogger())).toBe("ready");
      expect(isAlive(master)).toBe(true);
      writeFileSync(readyFile, `${process.pid}\n`); // none comes
      expect(await watchHandOver(opts, silentLogger())).toBe("retired");
      await until("HAProxy to exit", () => !isAlive(master), 15_000);
    } finally {
      await next.close();
    }
  });
});
