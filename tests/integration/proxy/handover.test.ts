/**
 * Hand-over on one host (issue #19): the bundle as `gateway run`, its listening sockets held by
 * the lab's socket holder (lab/shims/socket-holder.mjs, systemd's socket units in the lab), its
 * WireGuard in a network namespace (shims for ip, wg, wireguard-go, as the adversarial suite).
 * A steady connect loop and long-lived connections run across a hand-over (old main SIGTERMed,
 * as systemd's KillMode=process restart does, new one started on the same fds) and a SIGKILL.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWgKeyPair } from "../../../gateway-runtime/keys/wireguard.js";
import { createCa, issueLeaf, TEST_DOMAIN, type TestCa } from "../../../testkit/certs.js";
import { cleanupStale, NetnsHarness, processesMatching } from "../../../testkit/netns.js";
import { createTestCa } from "../../../testkit/ra-tls.js";
import { writeShims } from "../../../testkit/wireguard.js";
import { BUNDLE } from "../../helpers/e2e-lab.js";
import { until } from "../../../testkit/poll.js";
import { freePort, isAlive } from "../../../testkit/process.js";

const HOLDER = new URL("../../../lab/shims/socket-holder.mjs", import.meta.url).pathname;
const LISTEN = "127.0.0.1";
const HEALTH = `health.${TEST_DOMAIN}`;
const DRAIN_S = 4;

const net = new NetnsHarness();
let dir = "";
let ca: TestCa;
let port = 0;
let holder: ChildProcess | undefined;
let iface = "";

const log = () => readFileSync(join(dir, "gateway.log"), "utf8");
const mainPid = () => Number(readFileSync(join(dir, "holder", "main.pid"), "utf8"));

/** Starts a generation from the holder's sockets; resolves with its pid once it serves. */
async function startGeneration(): Promise<number> {
  const ready = join(dir, "ready");
  rmSync(ready, { force: true });
  process.kill(holder?.pid as number, "SIGUSR1");
  const pid = await until(
    "the new generation's ready file",
    () => {
      try {
        const written = Number(readFileSync(ready, "utf8"));
        return written > 0 ? written : undefined;
      } catch {
        return undefined;
      }
    },
    30_000,
    { context: log },
  );
  expect(pid).toBe(mainPid());
  return pid;
}

/** A TLS connection to health.<base>; resolves once it is up. */
function open(session?: Buffer): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({
      host: LISTEN,
      port,
      servername: HEALTH,
      ca: ca.certPem,
      ...(session ? { session } : {}),
    });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
    s.setTimeout(10_000, () => s.destroy(new Error("timeout")));
  });
}

/** One keep-alive request on `s`; resolves with the status line. */
function request(s: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes("\r\n\r\n")) {
        s.off("data", onData);
        resolve(got.split("\r\n")[0] ?? "");
      }
    };
    const onClose = () => reject(new Error("closed"));
    s.on("data", onData);
    s.once("close", onClose);
    s.once("data", () => s.off("close", onClose));
    s.write(`GET /health HTTP/1.1\r\nhost: ${HEALTH}\r\n\r\n`);
  });
}

/** A long-lived connection asking every 50 ms; counts answers and notes when it was cut. */
function longLived() {
  const state = { answers: 0, closedAt: 0, errors: 0 };
  const ready = open().then((s) => {
    s.on("close", () => (state.closedAt = Date.now()));
    s.on("error", () => {});
    const tick = async () => {
      while (!s.destroyed) {
        try {
          if ((await request(s)).includes("200")) state.answers++;
          else state.errors++;
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    void tick();
    return s;
  });
  return { state, ready };
}

/** New connections at `perSecond`, each one request; counts the ones that failed. */
function connectLoop(perSecond: number, session: Buffer | undefined) {
  const counts = { ok: 0, failed: 0, reused: 0 };
  const timer = setInterval(() => {
    open(session)
      .then(async (s) => {
        if (s.isSessionReused()) counts.reused++;
        const status = await request(s);
        s.destroy();
        if (status.includes("200")) counts.ok++;
        else counts.failed++;
      })
      .catch(() => counts.failed++);
  }, 1000 / perSecond);
  return { counts, stop: () => clearInterval(timer) };
}

beforeAll(async () => {
  await cleanupStale();
  dir = mkdtempSync(join(tmpdir(), "gw-handover-"));
  ca = createCa();
  const leaf = issueLeaf(ca, { sans: [`*.${TEST_DOMAIN}`, TEST_DOMAIN] });
  const ns = await net.add("wg");
  const shims = join(dir, "shims");
  mkdirSync(shims);
  writeShims(shims, ns);
  writeFileSync(join(dir, "client-ca.pem"), createTestCa("handover CA").pem);
  port = await freePort();
  const rpcPort = await freePort();
  const wg = generateWgKeyPair();
  iface = net.linkName("gw");
  const config = {
    log_level: "info",
    address: LISTEN,
    port: rpcPort,
    core: {
      rpc_domain: `rpc.${TEST_DOMAIN}`,
      state_path: join(dir, "state", "state.json"),
      auth: { enabled: false },
      certbot: { enabled: false },
      admin: { enabled: false },
      attestation: { mode: "ca", ca_file: join(dir, "client-ca.pem") },
      recycle: { enabled: false },
      wg: {
        public_key: wg.publicKey,
        private_key: wg.privateKey,
        ip: "10.77.0.1/24",
        client_ip_range: "10.77.0.0/24",
        reserved_net: ["10.77.0.0/30"],
        config_path: join(dir, "wireguard", "gw.conf"),
        interface: iface,
        endpoint: "127.0.0.1:51820",
      },
      proxy: {
        cert_chain: leaf.certFile,
        cert_key: leaf.keyFile,
        base_domain: TEST_DOMAIN,
        listen_addr: LISTEN,
        listen_port: port,
        http_redirect: false,
        workers: 2,
        drain_timeout: `${DRAIN_S}s`,
      },
    },
  };
  const configFile = join(dir, "gateway.json");
  writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });
  const holderDir = join(dir, "holder");
  mkdirSync(holderDir);
  const path = `${shims}${delimiter}${process.env.PATH ?? ""}`;
  writeFileSync(
    join(holderDir, "start"),
    `exec >>${join(dir, "gateway.log")} 2>&1\nexport PATH='${path}' LISTEN_PID=$$\nexec ${process.execPath} ${BUNDLE} run --config ${configFile} --ready-file ${join(dir, "ready")}\n`,
  );
  holder = spawn(
    process.execPath,
    [HOLDER, holderDir, `tls=${LISTEN}:${port}`, `rpc=${LISTEN}:${rpcPort}`],
    {
      stdio: "inherit",
    },
  );
  await until(
    "the socket holder",
    () => {
      try {
        return readFileSync(join(holderDir, "holder.pid"), "utf8").length > 0;
      } catch {
        return false;
      }
    },
    10_000,
  );
}, 60_000);

afterAll(async () => {
  for (const pid of processesMatching(BUNDLE)) process.kill(pid, "SIGKILL");
  holder?.kill("SIGTERM");
  await net.teardown();
  ca?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe("hand-over on one host", () => {
  it("refuses and cuts nothing, resumes old tickets, drains, and survives a SIGKILL of the main", async () => {
    const first = await startGeneration();
    const wgGo = processesMatching(`wireguard-go -f ${iface}`);
    expect(wgGo).toHaveLength(1);
    const ticketConn = await open();
    const ticket = await new Promise<Buffer>((resolve) => {
      const s = ticketConn;
      s.once("session", resolve);
      // Only the ticket matters: the connection is destroyed once it arrives, which may be
      // before the answer (a rejected request then, not a failure).
      request(s).catch(() => {});
    });
    ticketConn.destroy();

    const long = Array.from({ length: 4 }, () => longLived());
    await Promise.all(long.map((l) => l.ready));
    const loop = connectLoop(200, ticket);
    await new Promise((r) => setTimeout(r, 1_000));

    // (a) The hand-over, in systemd's order: the old main goes, then the new one starts.
    const handoverAt = Date.now();
    process.kill(first, "SIGTERM");
    await until("the old main to exit", () => !isAlive(first), 10_000);
    const answersAtHandover = long.map((l) => l.state.answers);
    const second = await startGeneration();
    await new Promise((r) => setTimeout(r, 1_000));
    // The long-lived connections of the old generation kept answering across it.
    long.forEach((l, i) => {
      expect(l.state.answers).toBeGreaterThan((answersAtHandover[i] ?? 0) + 5);
      expect(l.state.closedAt).toBe(0);
    });
    // (f, in the gateway) the same wireguard-go serves on.
    expect(processesMatching(`wireguard-go -f ${iface}`)).toEqual(wgGo);

    // (b) The old workers cut the long-lived connections at drain_timeout, and say how many.
    await until(
      "the old workers to cut at drain_timeout",
      () => long.every((l) => l.state.closedAt > 0),
      15_000,
    );
    for (const l of long) {
      expect(l.state.closedAt - handoverAt).toBeGreaterThanOrEqual(DRAIN_S * 1000 - 500);
    }
    const cut = [...log().matchAll(/"cut":(\d+).*drained: cut/g)].map((m) => Number(m[1]));
    expect(cut.reduce((a, b) => a + b, 0)).toBe(4);

    // (c) SIGKILL of the main: its workers' connections live on; a new main serves new ones.
    const kept = longLived();
    await kept.ready;
    process.kill(second, "SIGKILL");
    await new Promise((r) => setTimeout(r, 500));
    const before = kept.state.answers;
    await new Promise((r) => setTimeout(r, 500));
    expect(kept.state.answers).toBeGreaterThan(before);
    await startGeneration();
    // Still up (it is cut later, at the orphaned worker's drain_timeout).
    expect(kept.state.closedAt).toBe(0);
    expect(kept.state.errors).toBe(0);
    await new Promise((r) => setTimeout(r, 1_000));
    loop.stop();
    await new Promise((r) => setTimeout(r, 2_000));

    // (a) Not one new connection failed, across both; (d) the ticket from before resumed throughout.
    expect(loop.counts.failed).toBe(0);
    expect(loop.counts.ok).toBeGreaterThan(500);
    expect(loop.counts.reused).toBe(loop.counts.ok + loop.counts.failed);
  }, 90_000);
});

describe("the main process killed, no new generation yet", () => {
  it("its workers go on accepting until the next generation is ready, then drain", async () => {
    // The generation the test above left running goes first, as in a restart.
    const previous = mainPid();
    process.kill(previous, "SIGTERM");
    await until("the previous main to exit", () => !isAlive(previous), 10_000);
    const main = await startGeneration();
    const workers = processesMatching(`${BUNDLE} proxy-worker`).filter(
      (pid) =>
        readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[1] === String(main),
    );
    expect(workers).toHaveLength(2);
    process.kill(main, "SIGKILL");
    await until("the main to be gone", () => !isAlive(main), 5_000);
    // No one restarts it for now: the orphaned workers answer new connections at once.
    for (let i = 0; i < 10; i++) {
      const started = Date.now();
      const s = await open();
      expect(await request(s)).toContain("200");
      s.destroy();
      expect(Date.now() - started).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(workers.every(isAlive)).toBe(true);
    // The next generation's ready file is their cue to stop accepting and drain.
    await startGeneration();
    await until("the orphaned workers to drain and exit", () => !workers.some(isAlive), 15_000);
    expect(log()).toContain("serving on until the next generation is ready");
    expect(log()).toContain("the next generation is ready: draining");
  }, 60_000);
});
