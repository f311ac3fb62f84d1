import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectError, raceConnect } from "../../../gateway-runtime/proxy/connect.js";
import { pooledSmallBuffers } from "../../../gateway-runtime/proxy/read-buffers.js";
import type { Instance } from "../../../gateway-runtime/registry/index.js";
import { run } from "../../../testkit/netns.js";
import { freePort } from "../../../testkit/process.js";
import { silentAddress } from "../../helpers/silent.js";

/**
 * `raceConnect` against real loopback sockets, all on one port at different 127.0.7.x
 * addresses: two that accept, one where nothing listens (refused), and one that swallows
 * connects (`silentAddress`).
 */
const LIVE_A = "127.0.7.1";
const LIVE_B = "127.0.7.2";
const REFUSED = "127.0.7.3";
const SILENT = "127.0.7.4";

let port: number;
const accepted = new Map<string, number>();
let candidates: Candidates | undefined;

const inst = (id: string, ip: string): Instance => ({ id, appId: "app", ip, lastHandshakeMs: 0 });
const liveA = inst("live-a", LIVE_A);
const liveB = inst("live-b", LIVE_B);
const refused = inst("refused", REFUSED);
const silent = inst("silent", SILENT);

function recorder() {
  const failed: string[] = [];
  return { failed, failures: { failed: (id: string) => failed.push(id) } };
}

interface Candidates {
  close(): Promise<void>;
}

/** Servers on LIVE_A and LIVE_B with `handler`, and SILENT made silent, all on `port`. */
async function candidatesOn(
  port: number,
  handler: (socket: Socket, ip: string) => void,
): Promise<Candidates> {
  const servers: Server[] = [];
  for (const ip of [LIVE_A, LIVE_B]) {
    const server = createServer((socket) => handler(socket, ip));
    server.listen(port, ip);
    await once(server, "listening");
    servers.push(server);
  }
  const silenced = await silentAddress(SILENT, port);
  return {
    close: async () => {
      await silenced.close();
      for (const server of servers) server.close();
    },
  };
}

beforeAll(async () => {
  port = await freePort();
  candidates = await candidatesOn(port, (s, ip) => {
    accepted.set(ip, (accepted.get(ip) ?? 0) + 1);
    s.on("error", () => {});
    s.end();
  });
});

afterAll(async () => {
  await candidates?.close();
});

async function acceptedDuring(ms: number): Promise<Record<string, number>> {
  const before = new Map(accepted);
  await new Promise((r) => setTimeout(r, ms));
  return Object.fromEntries(
    [LIVE_A, LIVE_B].map((ip) => [ip, (accepted.get(ip) ?? 0) - (before.get(ip) ?? 0)]),
  );
}

describe("raceConnect, all candidates at once (attempt delay 0)", () => {
  it("keeps the one that answers and reports the one that refused", async () => {
    const { failed, failures } = recorder();
    const won = await raceConnect([refused, liveA], port, 2_000, { failures });
    won.socket.destroy();
    expect(won.instance.id).toBe("live-a");
    expect(failed).toEqual(["refused"]);
  });

  it("leaves nothing of the race on the winner: one inert error listener", async () => {
    const { failed, failures } = recorder();
    const won = await raceConnect([liveA], port, 2_000, { failures });
    expect(won.socket.listenerCount("error")).toBe(1);
    expect(won.socket.listenerCount("connect")).toBe(0);
    won.socket.emit("error", new Error("later, while bridged")); // no throw, not a connect failure
    won.socket.destroy();
    expect(failed).toEqual([]);
  });

  it("dials every candidate, so a silent one costs nothing and is not reported", async () => {
    const { failed, failures } = recorder();
    const counting = acceptedDuring(300);
    const started = Date.now();
    const won = await raceConnect([silent, liveA, liveB], port, 5_000, { failures });
    won.socket.destroy();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(["live-a", "live-b"]).toContain(won.instance.id);
    expect(await counting).toEqual({ [LIVE_A]: 1, [LIVE_B]: 1 }); // the loser was dialled too
    expect(failed).toEqual([]);
  });
});

describe("raceConnect, candidates in turn (attempt delay > 0)", () => {
  it("dials only the first when it answers", async () => {
    const counting = acceptedDuring(400);
    const won = await raceConnect([liveA, liveB], port, 2_000, { attemptDelayMs: 100 });
    won.socket.destroy();
    expect(won.instance.id).toBe("live-a");
    expect(await counting).toEqual({ [LIVE_A]: 1, [LIVE_B]: 0 });
  });

  it("dials the next at once when one refuses, without waiting for the delay", async () => {
    const { failed, failures } = recorder();
    const started = Date.now();
    const won = await raceConnect([refused, liveB], port, 5_000, {
      attemptDelayMs: 3_000,
      failures,
    });
    won.socket.destroy();
    expect(won.instance.id).toBe("live-b");
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(failed).toEqual(["refused"]);
  });

  it("dials the next after the delay when one stays silent, and reports the silent one", async () => {
    const { failed, failures } = recorder();
    const started = Date.now();
    const won = await raceConnect([silent, liveA], port, 5_000, { attemptDelayMs: 150, failures });
    won.socket.destroy();
    const took = Date.now() - started;
    expect(won.instance.id).toBe("live-a");
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(2_000);
    expect(failed).toEqual(["silent"]);
  });

  it("fails naming every instance when all refuse", async () => {
    const other = inst("refused-2", "127.0.7.5");
    const error = await raceConnect([refused, other], port, 2_000, { attemptDelayMs: 1_000 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe("E_CONNECT_FAILED");
    expect((error as Error).message).toContain(`refused@${REFUSED}:${port}`);
    expect((error as Error).message).toContain(`refused-2@127.0.7.5:${port}`);
  });

  it("gives up at the overall timeout when nothing answers", async () => {
    const started = Date.now();
    const error = await raceConnect([silent], port, 300, { attemptDelayMs: 100 }).catch(
      (e: unknown) => e,
    );
    expect((error as ConnectError).code).toBe("E_CONNECT_TIMEOUT");
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe("raceConnect, the losers", () => {
  // Servers that speak only when spoken to (as HTTP servers do), then close first: the winners
  // end with the server's FIN, so any TIME_WAIT of ours comes from a loser.
  let quietPort: number;
  let resets = 0;
  let quiet: Candidates | undefined;

  beforeAll(async () => {
    quietPort = await freePort();
    quiet = await candidatesOn(quietPort, (s) => {
      s.on("error", () => resets++);
      s.once("data", () => s.end("y"));
    });
  });

  afterAll(async () => {
    await quiet?.close();
  });

  /**
   * Sockets of ours in `state` (`ss` state names) to `quietPort` on one of `dst` (this file's
   * own 127.0.7.x addresses: a test elsewhere may have used the same port number before).
   */
  async function ours(state: string, dst: readonly string[]): Promise<number> {
    const filter = `dport = :${quietPort} and ( ${dst.map((d) => `dst ${d}`).join(" or ")} )`;
    const { stdout } = await run("ss", ["-tanH", "state", state, filter]);
    return stdout.split("\n").filter((line) => line.trim() !== "").length;
  }

  it("are reset, not closed: no TIME_WAIT left on the gateway for a connection it never used", async () => {
    const rounds = 20;
    for (let k = 0; k < rounds; k++) {
      const order = k % 2 === 0 ? [liveA, liveB] : [liveB, liveA];
      const { socket } = await raceConnect(order, quietPort, 2_000);
      socket.resume();
      socket.write("x");
      await once(socket, "close");
    }
    // Each round's loser connected as the race ended; give its reset a moment.
    for (let k = 0; k < 250 && resets < rounds; k++) await new Promise((r) => setTimeout(r, 20));
    expect(resets).toBe(rounds); // the CVM saw each loser reset, not left half-open
    expect(await ours("time-wait", [LIVE_A, LIVE_B])).toBe(0); // closing them would have left 20
  });

  it("give their read buffers back to the pool, whether they lost or failed (passthrough)", async () => {
    for (const order of [
      [liveA, liveB], // the second loses
      [refused, liveA], // the first fails
    ]) {
      const before = pooledSmallBuffers();
      const won = await raceConnect(order, quietPort, 2_000, { reuseReads: true });
      // Both dials took one (from the pool while it lasted); the winner keeps its own.
      for (let k = 0; k < 50 && pooledSmallBuffers() === Math.max(before - 2, 0); k++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(pooledSmallBuffers()).toBe(Math.max(before - 2, 0) + 1);
      won.socket.destroy();
      await once(won.socket, "close");
      won.reads?.release(); // what the bridge does when the winner closes
    }
  });

  it("that never answer are dropped after the connect timeout, and keep no one waiting", async () => {
    const sockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap");
    // Sockets of the tests before may still be closing: wait until the count holds still.
    let held = sockets().length;
    for (let k = 0; k < 50; k++) {
      await new Promise((r) => setTimeout(r, 20));
      if (sockets().length === held) break;
      held = sockets().length;
    }
    const before = await ours("syn-sent", [SILENT]); // the one that found it silent
    const { socket } = await raceConnect([silent, liveA], quietPort, 400);
    socket.destroy();
    await once(socket, "close");
    expect(await ours("syn-sent", [SILENT])).toBe(before + 1); // still trying, in case it answers
    expect(sockets().length).toBe(held); // but it would not delay the gateway's exit
    let left = before + 1;
    for (let k = 0; k < 100 && left > before; k++) {
      await new Promise((r) => setTimeout(r, 20));
      left = await ours("syn-sent", [SILENT]);
    }
    expect(left).toBe(before);
  });
});
