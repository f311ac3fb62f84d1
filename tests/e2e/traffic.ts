// Load the rollout tests hold on a gateway host while they change it: long-lived streams of
// three kinds (WebSocket through termination, SSH through `<app>-22`, TLS echo through
// passthrough `<app>-9443s`) that each send a line every second and check every byte comes back
// in order, and new connections (full TLS handshake, one HTTPS request) at a steady rate. Not a
// test file: rollout-suite.ts starts it, changes the host, and reads the report.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect as tlsConnect } from "node:tls";
import { WebSocket } from "ws";
import { sshOptions } from "../../lab/host.js";

export interface TrafficOptions {
  /** The gateway host's address. */
  readonly via: string;
  readonly app: string;
  readonly baseDomain: string;
  /** pebble's root: the gateway's certificate. */
  readonly caFile: string;
  /** The lab CVMs' CA: their own certificates behind passthrough. */
  readonly cvmCaFile: string;
  /** The key the lab's CVM sshd trusts. */
  readonly sshKey: string;
  readonly websockets: number;
  readonly passthrough: number;
  readonly ssh: number;
  /** New connections a second. */
  readonly newPerSecond: number;
}

type Kind = "websocket" | "passthrough" | "ssh";

/** A long-lived echo stream: what went out, what came back, and how it ended. */
interface Stream {
  readonly name: string;
  sent: number;
  echoed: number;
  mismatches: number;
  /** Bytes sent and not echoed yet, in order. */
  pending: string;
  /** Why it ended before the traffic stopped. */
  cut?: string;
  send(line: string): void;
  close(): void;
}

/** One new connection: when it started, how long its handshake took, and how it ended. */
export interface FreshConnection {
  readonly startedAt: number;
  endedAt: number;
  handshakeMs?: number;
  error?: string;
}

export interface TrafficReport {
  readonly streams: number;
  /** Streams that ended before `stop()`, with why. */
  readonly cut: string[];
  /** Streams whose echo differed from what they sent, or still owed bytes at the end. */
  readonly corrupted: string[];
  readonly bytesSent: number;
  readonly bytesEchoed: number;
  readonly fresh: readonly FreshConnection[];
}

export interface Traffic {
  /** Fresh connections so far (a copy). */
  fresh(): FreshConnection[];
  /** Stops sending, waits (bounded) for every echo, closes everything, and reports. */
  stop(): Promise<TrafficReport>;
}

const hostName = (o: TrafficOptions, label: string) => `${label}.${o.baseDomain}`;

function track(name: string, send: (line: string) => void, close: () => void): Stream {
  return { name, sent: 0, echoed: 0, mismatches: 0, pending: "", send, close };
}

/** Takes echoed bytes off the stream's pending ones; anything else is a mismatch. */
function echoed(stream: Stream, text: string): void {
  if (stream.pending.startsWith(text)) {
    stream.pending = stream.pending.slice(text.length);
    stream.echoed += Buffer.byteLength(text);
  } else stream.mismatches++;
}

function openWebSocket(o: TrafficOptions, i: number, ca: Buffer): Promise<Stream> {
  const name = hostName(o, `${o.app}-8080`);
  const ws = new WebSocket(`wss://${o.via}/ws`, {
    ca,
    servername: name,
    headers: { host: name },
  } as ConstructorParameters<typeof WebSocket>[2]);
  const stream = track(
    `websocket ${i}`,
    (line) => ws.send(line),
    () => ws.close(),
  );
  ws.on("message", (d) => echoed(stream, d.toString()));
  return new Promise((resolve, reject) => {
    ws.once("open", () => {
      ws.once("close", (code) => (stream.cut ??= `closed (${code})`));
      resolve(stream);
    });
    ws.once("error", (e) => {
      stream.cut ??= e.message;
      reject(e);
    });
  });
}

function openPassthrough(o: TrafficOptions, i: number, ca: Buffer): Promise<Stream> {
  const s = tlsConnect({
    host: o.via,
    port: 443,
    servername: hostName(o, `${o.app}-9443s`),
    ca,
    // The CVM's own certificate: its chain is checked, the gateway's name is not one of it.
    checkServerIdentity: () => undefined,
  });
  s.setEncoding("utf8");
  const stream = track(
    `passthrough ${i}`,
    (line) => s.write(line),
    () => s.end(),
  );
  s.on("data", (d: string) => echoed(stream, d));
  return new Promise((resolve, reject) => {
    s.once("secureConnect", () => {
      s.once("close", () => (stream.cut ??= "closed"));
      resolve(stream);
    });
    s.once("error", (e) => {
      stream.cut ??= e.message;
      reject(e);
    });
  });
}

/** `ssh root@cvm cat` through the gateway: a shell session whose stdin comes back on stdout. */
function openSsh(o: TrafficOptions, i: number): Promise<Stream> {
  const proxy = `openssl s_client -quiet -verify_return_error -connect ${o.via}:443 -servername ${hostName(o, `${o.app}-22`)} -CAfile ${o.caFile}`;
  const child: ChildProcessWithoutNullStreams = spawn(
    "ssh",
    ["-o", `ProxyCommand=${proxy}`, ...sshOptions(o.sshKey), "root@cvm", "echo ready; exec cat"],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  child.stdout.setEncoding("utf8");
  const stream = track(
    `ssh ${i}`,
    (line) => child.stdin.write(line),
    () => child.stdin.end(),
  );
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  child.stdin.on("error", () => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`ssh ${i}: no session within 20 s: ${err}`));
    }, 20_000);
    let banner = "";
    const onBanner = (d: string) => {
      banner += d;
      if (!banner.includes("ready\n")) return;
      clearTimeout(timer);
      child.stdout.off("data", onBanner);
      child.stdout.on("data", (t: string) => echoed(stream, t));
      child.once("close", (code) => (stream.cut ??= `ssh exited (${code}): ${err.trim()}`));
      resolve(stream);
    };
    child.stdout.on("data", onBanner);
    child.once("error", reject);
  });
}

/** One HTTPS request on a new connection, bounded at 15 s. */
function freshConnection(o: TrafficOptions, ca: Buffer, into: FreshConnection[]): void {
  const name = hostName(o, `${o.app}-8080`);
  const c: FreshConnection = { startedAt: Date.now(), endedAt: 0 };
  into.push(c);
  const done = (error?: string) => {
    if (c.endedAt !== 0) return;
    c.endedAt = Date.now();
    if (error !== undefined) c.error = error;
  };
  const req = httpsRequest(
    // agent: false, or the global agent would keep the connection alive and reuse it.
    {
      host: o.via,
      port: 443,
      path: "/",
      servername: name,
      headers: { host: name },
      ca,
      agent: false,
    },
    (res) => {
      res.resume();
      res.once("end", () => done(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`));
    },
  );
  req.once("socket", (s) =>
    s.once("secureConnect", () => (c.handshakeMs = Date.now() - c.startedAt)),
  );
  req.setTimeout(15_000, () => req.destroy(new Error("no answer within 15 s")));
  req.once("error", (e) => done(e.message));
  req.end();
}

/** Opens in batches so a slow start does not look like a failure. */
async function openAll<T>(count: number, batch: number, open: (i: number) => Promise<T>) {
  const out: T[] = [];
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    out.push(...(await Promise.all(Array.from({ length: n }, (_, k) => open(i + k)))));
  }
  return out;
}

export async function startTraffic(o: TrafficOptions): Promise<Traffic> {
  const ca = readFileSync(o.caFile);
  const cvmCa = readFileSync(o.cvmCaFile);
  const streams: Stream[] = [];
  const kinds: [Kind, number, (i: number) => Promise<Stream>][] = [
    ["websocket", o.websockets, (i) => openWebSocket(o, i, ca)],
    ["passthrough", o.passthrough, (i) => openPassthrough(o, i, cvmCa)],
    ["ssh", o.ssh, (i) => openSsh(o, i)],
  ];
  try {
    for (const [, count, open] of kinds) streams.push(...(await openAll(count, 10, open)));
  } catch (error) {
    for (const s of streams) s.close();
    throw error;
  }
  let seq = 0;
  const sender = setInterval(() => {
    seq++;
    for (const s of streams) {
      if (s.cut !== undefined) continue;
      const line = `${s.name} ${seq} ${randomBytes(12).toString("hex")}\n`;
      s.pending += line;
      s.sent += Buffer.byteLength(line);
      s.send(line);
    }
  }, 1000);
  const fresh: FreshConnection[] = [];
  const opener = setInterval(() => freshConnection(o, ca, fresh), 1000 / o.newPerSecond);

  return {
    fresh: () => fresh.map((c) => ({ ...c })),
    async stop() {
      clearInterval(sender);
      clearInterval(opener);
      const deadline = Date.now() + 15_000;
      const settled = () =>
        streams.every((s) => s.cut !== undefined || s.pending === "") &&
        fresh.every((c) => c.endedAt !== 0);
      while (!settled() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const cut = streams.filter((s) => s.cut !== undefined).map((s) => `${s.name}: ${s.cut}`);
      const corrupted = streams
        .filter((s) => s.mismatches > 0 || s.pending !== "")
        .map((s) => `${s.name}: ${s.mismatches} mismatches, ${s.pending.length} bytes owed`);
      for (const s of streams) s.close();
      return {
        streams: streams.length,
        cut,
        corrupted,
        bytesSent: streams.reduce((n, s) => n + s.sent, 0),
        bytesEchoed: streams.reduce((n, s) => n + s.echoed, 0),
        fresh: fresh.map((c) => ({ ...c })),
      };
    },
  };
}
