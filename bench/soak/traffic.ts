/**
 * The soak's traffic (`MIX` in plan.ts) in a process of its own, so its CPU and descriptors are
 * never the gateway's or the sampler's: new terminated connections with keep-alive requests,
 * passthrough connections, long-lived streams opened and closed over time, connections that
 * stop mid-handshake, and HTTP/2 sessions, all through the gateway on loopback until SIGTERM.
 * Then (or 2 minutes past `--seconds`) it stops starting anything, closes what is open, prints
 * its counts as one line `SOAK_TRAFFIC_FINAL {json}` and exits; every minute before that a
 * `SOAK_TRAFFIC {json}` line.
 *
 *   node soak-traffic.mjs --port N --ca FILE --term NAME --pass NAME --h2 NAME --seconds S
 */
import { readFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { parseArgs } from "node:util";
import {
  captureHello,
  closeGracefully,
  closeH2,
  get,
  h2Get,
  HOST,
  openH2,
  openTls,
  reset,
} from "./clients.js";
import { MIX, type Range, TRAFFIC_KINDS, type TrafficKind } from "./plan.js";
import type { KindTotals } from "./stats.js";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    ca: { type: "string" },
    term: { type: "string" },
    pass: { type: "string" },
    h2: { type: "string" },
    seconds: { type: "string" },
  },
});
const port = Number(values.port);
const names = { term: values.term ?? "", pass: values.pass ?? "", h2: values.h2 ?? "" };
const ca = readFileSync(values.ca ?? "", "utf8");
/** Long-lived lives are capped at half the run, so short runs see some end too. */
const lifeCapS = Number(values.seconds) / 2;
const STOP_BOUND_MS = 20_000;
const ERROR_SAMPLES = 5;

class Counts {
  started = 0;
  ok = 0;
  errors = 0;
  requests = 0;
  skipped = 0;
  cut = 0;
  readonly errorSamples: string[] = [];
  fail(error: unknown): void {
    this.errors += 1;
    const message = error instanceof Error ? error.message : String(error);
    if (this.errorSamples.length < ERROR_SAMPLES && !this.errorSamples.includes(message))
      this.errorSamples.push(message);
  }
}
const counts = Object.fromEntries(TRAFFIC_KINDS.map((k) => [k, new Counts()])) as Record<
  TrafficKind,
  Counts
>;

let stopping = false;
let wake: () => void = () => {};
const stopped = new Promise<void>((resolve) => {
  wake = resolve;
});
/** Sleeps `ms`, or less once the stop began. */
const pause = (ms: number): Promise<void> =>
  Promise.race([new Promise<void>((r) => setTimeout(r, ms).unref()), stopped]);
const pick = ([lo, hi]: Range): number => lo + Math.random() * (hi - lo);
const pickInt = (r: Range): number => Math.floor(pick([r[0], r[1] + 1]));

/** Starts `task` `perSecond` times a second while fewer than `maxInFlight` run. */
function paced(
  kind: TrafficKind,
  perSecond: number,
  maxInFlight: number,
  task: () => Promise<void>,
) {
  const c = counts[kind];
  const running = new Set<Promise<void>>();
  const tickMs = 50;
  let credit = 0;
  const timer = setInterval(() => {
    credit += (perSecond * tickMs) / 1000;
    for (; credit >= 1; credit--) {
      if (running.size >= maxInFlight) {
        c.skipped += 1;
        continue;
      }
      c.started += 1;
      const run = task().then(
        () => {
          c.ok += 1;
        },
        (e: unknown) => c.fail(e),
      );
      running.add(run);
      void run.finally(() => running.delete(run));
    }
  }, tickMs);
  return async () => {
    clearInterval(timer);
    await Promise.all(running);
  };
}

/** Keeps `concurrent` runs of `task` going until the stop; a failed one is replaced after 1 s. */
function kept(kind: TrafficKind, concurrent: number, task: (slot: number) => Promise<void>) {
  const c = counts[kind];
  const slots = Array.from({ length: concurrent }, async (_, slot) => {
    while (!stopping) {
      c.started += 1;
      try {
        await task(slot);
        c.ok += 1;
      } catch (e) {
        c.fail(e);
        await pause(1000);
      }
    }
  });
  return async () => {
    await Promise.all(slots);
  };
}

const tls = (name: string) => ({ port, servername: name, ca });
let sessions: Buffer[] = [];

/** New terminated connection, half of them resuming, with keep-alive requests, then a FIN. */
async function term(): Promise<void> {
  const session = Math.random() < 0.5 ? sessions.pop() : undefined;
  const socket = await openTls({ ...tls(names.term), ...(session ? { session } : {}) });
  socket.on("session", (s: Buffer) => {
    sessions = [...sessions.slice(-15), s];
  });
  try {
    for (let k = pickInt(MIX.term.requests); k > 0; k--) {
      await get(socket, names.term, "/");
      counts.term.requests += 1;
    }
  } finally {
    await closeGracefully(socket);
  }
}

let passConnections = 0;
/** New passthrough connection (TLS with the backend itself), requests, now and then 1 MiB. */
async function pass(): Promise<void> {
  const socket = await openTls(tls(names.pass));
  try {
    const download = ++passConnections % MIX.pass.downloadEvery === 0;
    for (let k = pickInt(MIX.pass.requests); k > 0; k--) {
      await get(socket, names.pass, download && k === 1 ? "/1m" : "/");
      counts.pass.requests += 1;
    }
  } finally {
    await closeGracefully(socket);
  }
}

/** A long-lived stream: a request every few seconds, some slow downloads, then a FIN or a reset. */
async function long(slot: number): Promise<void> {
  const name = slot % 2 === 0 ? names.term : names.pass;
  const socket = await openTls(tls(name));
  const life = Math.min(pick(MIX.long.lifeSeconds), lifeCapS) * 1000;
  const until = performance.now() + life;
  let resetting = false;
  try {
    for (let k = 1; !stopping && performance.now() < until; k++) {
      await pause(pick(MIX.long.gapSeconds) * 1000);
      if (stopping) break;
      const slow = k % MIX.long.slowDownloadEvery === 0;
      await get(socket, name, slow ? "/1m" : "/", { slow });
      counts.long.requests += 1;
    }
    resetting = !stopping && Math.random() < MIX.long.resetShare;
  } finally {
    if (resetting) await reset(socket, name, "/1m");
    else await closeGracefully(socket);
  }
}

const stallKinds = ["silent", "half", "hello-term", "hello-pass", "wait"] as const;
let stallTurn = 0;
let hellos: { term: Buffer; pass: Buffer };

/** The server's first bytes, its close, or neither within `boundMs` (or before the stop). */
function firstEvent(socket: Socket, boundMs: number): Promise<"closed" | "data" | "timeout"> {
  return new Promise((resolve) => {
    const finish = (what: "closed" | "data" | "timeout") => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      resolve(what);
    };
    const onData = () => finish("data");
    const onClose = () => finish("closed");
    const timer = setTimeout(() => finish("timeout"), boundMs);
    void stopped.then(() => finish("timeout"));
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

/** A connection that stops mid-handshake, one of `stallKinds` in turn. */
async function stall(): Promise<void> {
  const kind = stallKinds[stallTurn++ % stallKinds.length];
  const socket = netConnect({ host: HOST, port });
  socket.on("error", () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("close", () => reject(new Error("connect failed")));
    });
    const half = hellos.term.subarray(0, hellos.term.length >> 1);
    if (kind === "half") socket.write(half);
    if (kind === "hello-term" || kind === "hello-pass") {
      socket.write(kind === "hello-term" ? hellos.term : hellos.pass);
      if ((await firstEvent(socket, 5000)) !== "data") {
        throw new Error(`${kind}: no answer to a whole ClientHello`);
      }
    }
    if (kind === "wait") {
      socket.write(half);
      const bound = MIX.stall.waitBoundSeconds * 1000;
      const outcome = await firstEvent(socket, bound);
      if (outcome === "closed") counts.stall.cut += 1;
      else if (!stopping) throw new Error(`wait: not cut within ${bound} ms (${outcome})`);
    }
  } finally {
    socket.destroy();
  }
}

/** An HTTP/2 session: `streams` requests at a time at its share of the rate, then GOAWAY. */
async function h2(): Promise<void> {
  const session = await openH2(tls(names.h2));
  const life = Math.min(pick(MIX.h2.lifeSeconds), lifeCapS) * 1000;
  const until = performance.now() + life;
  const gapMs = (1000 * MIX.h2.sessions * MIX.h2.streams) / MIX.h2.perSecond;
  try {
    const streams = Array.from({ length: MIX.h2.streams }, async () => {
      while (!stopping && performance.now() < until) {
        await pause(gapMs * Math.random() * 2);
        if (stopping) break;
        await h2Get(session, "/");
        counts.h2.requests += 1;
      }
    });
    await Promise.all(streams);
  } finally {
    await closeH2(session);
  }
}

function totals(): Record<string, KindTotals> {
  const out: Record<string, KindTotals> = {};
  for (const k of TRAFFIC_KINDS) {
    const { started, ok, errors, requests, skipped, cut, errorSamples } = counts[k];
    const stall = k === "stall" ? { cut } : {};
    out[k] = { started, ok, errors, requests, skipped, ...stall, errorSamples: [...errorSamples] };
  }
  return out;
}

async function main(): Promise<void> {
  hellos = { term: await captureHello(names.term), pass: await captureHello(names.pass) };
  const stops = [
    paced("term", MIX.term.perSecond, MIX.term.maxInFlight, term),
    paced("pass", MIX.pass.perSecond, MIX.pass.maxInFlight, pass),
    paced("stall", MIX.stall.perSecond, MIX.stall.maxInFlight, stall),
    kept("long", MIX.long.concurrent, long),
    kept("h2", MIX.h2.sessions, h2),
  ];
  const progress = setInterval(() => {
    process.stdout.write(`SOAK_TRAFFIC ${JSON.stringify(totals())}\n`);
  }, 60_000);
  // Until the soak says so, or a while past the planned length should it never say.
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
    setTimeout(resolve, (Number(values.seconds) + 120) * 1000).unref();
  });
  stopping = true;
  wake();
  clearInterval(progress);
  setTimeout(() => {
    process.stderr.write("soak traffic: connections still open after the stop bound\n");
    process.stdout.write(`SOAK_TRAFFIC_FINAL ${JSON.stringify(totals())}\n`);
    process.exit(2);
  }, STOP_BOUND_MS).unref();
  await Promise.all(stops.map((stop) => stop()));
  process.stdout.write(`SOAK_TRAFFIC_FINAL ${JSON.stringify(totals())}\n`);
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`soak traffic: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
