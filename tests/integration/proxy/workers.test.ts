/**
 * `core.proxy.workers` > 1: the test process is the primary (as `gateway run` would be), the
 * workers are the real bundle (`gateway proxy-worker`), sharing the TLS port.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type SecureContextOptions } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProxyWorkers } from "../../../gateway-runtime/workers/index.js";
import type { ProxySnapshot } from "../../../gateway-runtime/proxy/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { MemoryDirectory } from "../../../gateway-runtime/registry/index.js";
import { createCa, issueLeaf, TEST_DOMAIN, type TestCa } from "../../../testkit/certs.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { BUNDLE } from "../../helpers/e2e-lab.js";
import { until } from "../../../testkit/poll.js";
import { freePort } from "../../../testkit/process.js";
import { type Backend, httpBackend } from "./harness.js";

const LISTEN = "127.0.9.1";
const APP = "c0ffee";
const LATER = "beef01";

let ca: TestCa;
let dir: string;
let port: number;
let certFile: string;
let workers: ProxyWorkers;
const directory = new MemoryDirectory();
const backends: Backend[] = [];

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
  backends.push(
    await httpBackend("one", "127.0.9.2", 8080),
    await httpBackend("two", "127.0.9.3", 8080),
  );
  directory.upsert({ id: `${APP}01`, appId: APP, ip: "127.0.9.2", lastHandshakeMs: Date.now() });
  workers = await ProxyWorkers.start({
    count: 2,
    configFile,
    directory,
    log: silentLogger(),
    exec: BUNDLE,
    execArgv: [],
  });
}, 60_000);

afterAll(async () => {
  await workers?.stop();
  for (const b of backends) await b.close();
  ca?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  body: string;
  reused: boolean;
  serial: string;
  session: Buffer | undefined;
}

/** One HTTPS request through the workers' port; resolves with what the client saw. */
function get(app: string, session?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options: SecureContextOptions & Record<string, unknown> = {
      host: LISTEN,
      port,
      servername: `${app}-8080.${TEST_DOMAIN}`,
      ca: ca.certPem,
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

describe("proxy workers", () => {
  it("forks the configured number of workers, which serve the shared port", async () => {
    expect(workers.pids()).toHaveLength(2);
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

  it("sums the workers' counters for the admin API, without waiting on a stuck worker", async () => {
    const before = await workers.snapshot();
    expect(before).toMatchObject({ workers: 2, answered: 2 });
    for (let k = 0; k < 10; k++) await get(APP);
    const after = await workers.snapshot();
    expect(after).toMatchObject({ workers: 2, answered: 2 });
    expect((after.snapshot.apps[APP]?.total ?? 0) - (before.snapshot.apps[APP]?.total ?? 0)).toBe(
      10,
    );
    expect(after.snapshot.apps[APP]?.active).toBe(0);
    expect(after.snapshot.certificates).toHaveLength(2); // one per worker
    // Each worker's histograms come back as prom-client JSON, summed when rendered.
    const handshakes = "gateway_tls_handshake_duration_seconds";
    const connects = "gateway_instance_connect_duration_seconds";
    expect(after.snapshot.timings.filter((m) => m.name === handshakes)).toHaveLength(2);
    expect(observed(after.snapshot, handshakes) - observed(before.snapshot, handshakes)).toBe(10);
    expect(observed(after.snapshot, connects) - observed(before.snapshot, connects)).toBe(10);
    const [stuck] = workers.pids();
    process.kill(stuck as number, "SIGSTOP");
    try {
      const started = Date.now();
      const partial = await workers.snapshot(1_500);
      expect(partial).toMatchObject({ workers: 2, answered: 1 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_490);
    } finally {
      process.kill(stuck as number, "SIGCONT");
    }
  });

  it("replaces dead workers, and a ticket from the old ones resumes on the new ones", async () => {
    const first = await get(APP);
    expect(first.session).toBeDefined();
    const old = workers.pids();
    for (const pid of old) process.kill(pid, "SIGKILL");
    const resumed = await eventually(
      "a replacement worker answers",
      () => get(APP, first.session),
      (a) => a.body.includes("one GET"),
    );
    expect(resumed.reused).toBe(true); // the replacements got the primary's ticket keys
    await eventually(
      "two new workers",
      async () => workers.pids(),
      (p) => p.length === 2,
    );
    expect(workers.pids().some((pid) => old.includes(pid))).toBe(false);
  });

  it("has every worker reload the certificate when told to", async () => {
    const before = (await get(APP)).serial;
    const next = issueLeaf(ca);
    copyFileSync(next.keyFile, join(dir, "key.pem"));
    copyFileSync(next.certFile, certFile);
    workers.reloadCertificate();
    // Sooner than the workers' own file watch would notice (2 s poll, then 2 s quiet time).
    const serials = await eventually(
      "both workers on the new certificate",
      async () => (await workers.snapshot(1_000)).snapshot.certificates.map((c) => c.serial),
      (s) => s.length === 2 && s.every((serial) => serial === next.serial),
      1_800,
    );
    expect(serials).toEqual([next.serial, next.serial]);
    for (let k = 0; k < 10; k++) expect((await get(APP)).serial).not.toBe(before);
  });
});

/** Observations of a histogram over every worker's JSON. */
function observed(snapshot: ProxySnapshot, name: string): number {
  return snapshot.timings
    .filter((m) => m.name === name)
    .flatMap((m) => m.values)
    .filter((v) => v.metricName === `${name}_count`)
    .reduce((sum, v) => sum + v.value, 0);
}
