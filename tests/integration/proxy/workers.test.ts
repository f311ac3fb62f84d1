/**
 * `core.proxy.workers` > 1, on both engines. Node: the test process is the primary (as
 * `gateway run` would be), the workers are the real bundle (`gateway proxy-worker`), sharing
 * the TLS port. HAProxy: the engine's real entry (`startHaproxyPlane`), `workers` its
 * `nbthread`, supervised by this process as the runtime does.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type SecureContextOptions } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { startHaproxyPlane } from "../../../gateway-runtime/engine/haproxy/plane.js";
import { ProxyWorkers } from "../../../gateway-runtime/workers/index.js";
import type { ProxySnapshot } from "../../../gateway-runtime/proxy/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import { createCa, issueLeaf, TEST_DOMAIN, type TestCa } from "../../../testkit/certs.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { BUNDLE } from "../../helpers/e2e-lab.js";
import { until } from "../../../testkit/poll.js";
import { freePort } from "../../../testkit/process.js";
import { type Backend, ENGINES, type Engine, httpBackend } from "./harness.js";

const LISTEN = "127.0.9.1";
const APP = "c0ffee";
const LATER = "beef01";

const directory = new MemoryDirectory();
const backends: Backend[] = [];

/** The data plane under test, the same questions asked of either engine. */
interface Plane {
  /** The processes (node) or threads (haproxy: `nbthread`) serving the port. */
  serving(): Promise<number>;
  /** The serving processes a crash would take: the workers, or HAProxy's worker. */
  pids(): Promise<number[]>;
  /** HAProxy's master (0 on Node): a new one is the runtime's supervisor restarting HAProxy. */
  master(): Promise<number>;
  snapshot(timeoutMs?: number): Promise<{ snapshot: ProxySnapshot; answered: number }>;
  reloadCertificate(): Promise<void>;
  stop(): Promise<void>;
  /** Certificates a snapshot lists: one per Node worker; HAProxy's slow path's one. */
  readonly certificates: number;
  /** Snapshots that answer: every Node worker; HAProxy once (its counters with the slow path's). */
  readonly answering: number;
}

async function startPlane(
  engine: Engine,
  raw: Record<string, unknown>,
  configFile: string,
): Promise<Plane> {
  if (engine === "node") {
    const workers = await ProxyWorkers.start({
      count: 2,
      configFile,
      directory,
      log: silentLogger(),
      exec: BUNDLE,
      execArgv: [],
    });
    return {
      serving: async () => workers.pids().length,
      pids: async () => workers.pids(),
      master: async () => 0,
      snapshot: (timeoutMs) => workers.snapshot(timeoutMs),
      reloadCertificate: async () => workers.reloadCertificate(),
      stop: () => workers.stop(),
      certificates: 2,
      answering: 2,
    };
  }
  const config = parseGatewayConfig(withKey(raw, "core.proxy.engine", "haproxy"), "workers");
  const hx = await startHaproxyPlane(config, { directory, log: silentLogger() });
  return {
    serving: async () =>
      Number(/^Nbthread: (\d+)$/m.exec(await hx.engine.api.run("show info"))?.[1] ?? 0),
    pids: async () => [...(await hx.engine.process.procs()).workers],
    master: async () => (await hx.engine.process.procs()).master,
    snapshot: () => hx.snapshot(),
    reloadCertificate: () => hx.reloadCertificate(),
    stop: () => hx.stop(),
    certificates: 1,
    answering: 1,
  };
}

beforeAll(async () => {
  backends.push(
    await httpBackend("one", "127.0.9.2", 8080),
    await httpBackend("two", "127.0.9.3", 8080),
  );
  directory.upsert({ id: `${APP}01`, appId: APP, ip: "127.0.9.2", lastHandshakeMs: Date.now() });
});

afterAll(async () => {
  for (const b of backends) await b.close();
});

describe.each(ENGINES)("proxy workers, %s engine", (engine) => {
  let ca: TestCa;
  let dir: string;
  let port: number;
  let certFile: string;
  let plane: Plane;

  beforeAll(async () => {
    ca = createCa();
    const leaf = issueLeaf(ca);
    dir = mkdtempSync(join(tmpdir(), "gw-workers-"));
    certFile = join(dir, "cert.pem");
    const keyFile = join(dir, "key.pem");
    copyFileSync(leaf.certFile, certFile);
    copyFileSync(leaf.keyFile, keyFile);
    port = await freePort();
    let raw = minimalConfig();
    for (const [key, value] of Object.entries({
      "core.state_path": join(dir, "state", "state.json"),
      "core.proxy.listen_addr": LISTEN,
      "core.proxy.listen_port": port,
      "core.proxy.http_redirect": false,
      "core.proxy.workers": 2,
      "core.proxy.cert_chain": certFile,
      "core.proxy.cert_key": keyFile,
      "core.proxy.base_domain": TEST_DOMAIN,
      "core.proxy.timeouts.cache_top_n": "1ms",
      "core.admin.enabled": false,
      log_level: "warn",
    })) {
      raw = withKey(raw, key, value);
    }
    const configFile = join(dir, "gateway.json");
    writeFileSync(configFile, JSON.stringify(raw));
    plane = await startPlane(engine, raw, configFile);
  }, 60_000);

  afterAll(async () => {
    await plane?.stop();
    ca?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** One HTTPS request through the port; resolves with what the client saw. */
  function get(app: string, session?: Buffer): Promise<Answer> {
    return request({ port, ca, servername: `${app}-8080.${TEST_DOMAIN}` }, session);
  }

  it("forks the configured number of workers, which serve the shared port", async () => {
    expect(await plane.serving()).toBe(2);
    for (let k = 0; k < 10; k++) expect((await get(APP)).body).toMatch(/\r\n\r\none GET \/ /);
  });

  it("sends every directory change to the workers", async () => {
    await expect(get(LATER)).rejects.toThrow(); // unknown app: closed during the handshake
    directory.upsert({
      id: `${LATER}01`,
      appId: LATER,
      ip: "127.0.9.3",
      lastHandshakeMs: Date.now(),
    });
    const answer = await eventually(
      "the new app is routed",
      () => get(LATER),
      (a) => a.body.includes("two GET"),
    );
    expect(answer.body).toMatch(/two GET \//);
    directory.remove(`${LATER}01`);
    const refused = () =>
      get(LATER).then(
        () => false,
        () => true,
      );
    await eventually("the removed app is refused", refused, (r) => r);
  });

  it("sums the workers' counters for the admin API", async () => {
    const before = await plane.snapshot();
    expect(before.answered).toBe(plane.answering);
    for (let k = 0; k < 10; k++) await get(APP);
    const after = await plane.snapshot();
    expect(after.answered).toBe(plane.answering);
    expect((after.snapshot.apps[APP]?.total ?? 0) - (before.snapshot.apps[APP]?.total ?? 0)).toBe(
      10,
    );
    expect(after.snapshot.apps[APP]?.active).toBe(0);
    expect(after.snapshot.certificates).toHaveLength(plane.certificates);
    const handshakes = "gateway_tls_handshake_duration_seconds";
    const connects = "gateway_instance_connect_duration_seconds";
    if (engine === "haproxy") {
      // HAProxy keeps averages, not histograms (engine/haproxy/stats.ts): none but the slow
      // path's, which saw none of these connections.
      expect(observed(after.snapshot, handshakes) - observed(before.snapshot, handshakes)).toBe(0);
      return;
    }
    // Each worker's histograms come back as prom-client JSON, summed when rendered.
    expect(after.snapshot.timings.filter((m) => m.name === handshakes)).toHaveLength(2);
    expect(observed(after.snapshot, handshakes) - observed(before.snapshot, handshakes)).toBe(10);
    expect(observed(after.snapshot, connects) - observed(before.snapshot, connects)).toBe(10);
  });

  // Node only: the snapshot is an IPC round trip to each worker process; HAProxy answers on
  // its runtime API from one process, with no worker of its own to wait for.
  if (engine === "node")
    it("does not wait on a stuck worker for the counters", async () => {
      const [stuck] = await plane.pids();
      process.kill(stuck as number, "SIGSTOP");
      try {
        const started = Date.now();
        const partial = await plane.snapshot(1_500);
        expect(partial).toMatchObject({ workers: 2, answered: 1 });
        expect(Date.now() - started).toBeGreaterThanOrEqual(1_490);
      } finally {
        process.kill(stuck as number, "SIGCONT");
      }
    });

  it("replaces dead workers, and a ticket from the old ones resumes on the new ones", async () => {
    const first = await get(APP);
    expect(first.session).toBeDefined();
    const old = await plane.pids();
    const master = await plane.master();
    expect(old.length).toBeGreaterThan(0);
    // HAProxy: its worker gone, the master exits and the runtime starts HAProxy again.
    for (const pid of old) process.kill(pid, "SIGKILL");
    const resumed = await eventually(
      "a replacement worker answers",
      () => get(APP, first.session),
      (a) => a.body.includes("one GET"),
    );
    const now = await eventually(
      "new workers",
      () => plane.pids(),
      (p) => p.length === old.length,
    );
    expect(now.some((pid) => old.includes(pid))).toBe(false);
    if (engine === "node") {
      expect(resumed.reused).toBe(true); // the replacements got the primary's ticket keys
      return;
    }
    // Its master went with its worker, and the runtime started HAProxy again.
    expect(await plane.master()).not.toBe(master);
    // HAProxy draws its own keys when it starts (README "Data plane engines": pinned keys in
    // 2.6 would stop the fresh ticket after each TLS 1.3 resumption). The old ticket costs one
    // full handshake, not the connection, and what it gets back resumes and is renewed.
    expect(resumed.reused).toBe(false);
    expect(resumed.session).toBeDefined();
    const again = await get(APP, resumed.session);
    expect(again.reused).toBe(true);
    expect(again.session).toBeDefined();
  });

  it("has every worker reload the certificate when told to", async () => {
    const before = (await get(APP)).serial;
    const next = issueLeaf(ca);
    copyFileSync(next.keyFile, join(dir, "key.pem"));
    copyFileSync(next.certFile, certFile);
    await plane.reloadCertificate();
    // Sooner than the workers' own file watch would notice (2 s poll, then 2 s quiet time).
    const serials = await eventually(
      "every worker on the new certificate",
      async () => (await plane.snapshot(1_000)).snapshot.certificates.map((c) => c.serial),
      (s) => s.length === plane.certificates && s.every((serial) => serial === next.serial),
      1_800,
    );
    expect(serials).toHaveLength(plane.certificates);
    for (let k = 0; k < 10; k++) {
      const served = (await get(APP)).serial;
      expect(served).not.toBe(before);
      expect(served).toBe(next.serial);
    }
  });
});

interface Answer {
  body: string;
  reused: boolean;
  serial: string;
  session: Buffer | undefined;
}

/** One HTTPS request to `servername` on `port`; resolves with what the client saw. */
function request(
  to: { port: number; ca: TestCa; servername: string },
  session?: Buffer,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options: SecureContextOptions & Record<string, unknown> = {
      host: LISTEN,
      port: to.port,
      servername: to.servername,
      ca: to.ca.certPem,
      ...(session ? { session } : {}),
    };
    const s = connect(options);
    let body = "";
    let fresh: Buffer | undefined;
    const timer = setTimeout(() => s.destroy(new Error("no answer within 10 s")), 10_000);
    s.on("session", (t: Buffer) => (fresh = t));
    let reused = false;
    let serial = "";
    s.once("secureConnect", () => {
      reused = s.isSessionReused();
      serial = s.getPeerX509Certificate()?.serialNumber ?? "";
      s.end(`GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    });
    s.on("data", (d: Buffer) => (body += d.toString()));
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.once("close", () => {
      clearTimeout(timer);
      resolve({ body, reused, serial, session: fresh });
    });
  });
}

/** `fn()` until `ok` holds for its value, polled every 100 ms (`until` of testkit/poll.ts). */
function eventually<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  withinMs = 10_000,
): Promise<T> {
  return until(
    what,
    async () => {
      const v = await fn();
      return ok(v) ? v : undefined;
    },
    withinMs,
    { everyMs: 100 },
  );
}

/** Observations of a histogram over every worker's JSON. */
function observed(snapshot: ProxySnapshot, name: string): number {
  return snapshot.timings
    .filter((m) => m.name === name)
    .flatMap((m) => m.values)
    .filter((v) => v.metricName === `${name}_count`)
    .reduce((sum, v) => sum + v.value, 0);
}
