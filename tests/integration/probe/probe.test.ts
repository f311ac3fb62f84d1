/**
 * `gateway probe` against the real data plane on loopback (the same factory as `gateway run`),
 * with a canary app's backends standing in for a CVM: every gate passes on a healthy gateway,
 * and each failure names its gate. Names resolve through a DNS server the test runs.
 */
import { writeFileSync } from "node:fs";
import {
  createServer as createH2cServer,
  type Http2Server,
  type ServerHttp2Stream,
} from "node:http2";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseProbeArgs, probeCommand } from "../../../gateway-runtime/cli/probe.js";
import { type ProbeOptions, runProbe } from "../../../gateway-runtime/probe/index.js";
import { createCa, issueLeaf } from "../../../testkit/certs.js";
import { tempDir, tempFile } from "../../../testkit/tmp.js";
import {
  APP_A,
  APP_B,
  type Backend,
  httpBackend,
  type ProxyLab,
  startProxyLab,
  TEST_DOMAIN,
} from "../proxy/harness.js";

// An address of its own, so the backends do not meet other suites' on 127.0.1.x.
const CVM = "127.0.9.2";
let lab: ProxyLab;
const backends: Backend[] = [];
let h2: Http2Server;
let tls: HttpsServer;
let caFile: string;

beforeAll(async () => {
  lab = await startProxyLab();
  lab.addInstance("aa09", APP_A, CVM);
  backends.push(await httpBackend("a-80", CVM, 80), await httpBackend("a-8080", CVM, 8080));
  // The app's own TLS for the passthrough form: a certificate the probe does not judge.
  const appCa = createCa({ dir: tempDir("gw-certs-") });
  const appLeaf = issueLeaf(appCa, { sans: ["app.internal"] });
  tls = createHttpsServer({ cert: appLeaf.certPem, key: appLeaf.keyPem }, (_req, res) =>
    res.end("tls-ok"),
  );
  await new Promise<void>((r) => tls.listen(8443, CVM, r));
  h2 = createH2cServer();
  // @types/node 26 types the event with the session-level Http2Stream; a server stream it is.
  h2.on("stream", (stream: ServerHttp2Stream) => {
    stream.respond({ ":status": 200 });
    stream.end("h2-ok");
  });
  await new Promise<void>((r) => h2.listen(50051, CVM, r));
  caFile = tempFile("probe-", "ca.pem", lab.ca.certPem);
  for (const label of [
    "health",
    APP_A,
    `${APP_A}-8080`,
    `${APP_A}-8443s`,
    `${APP_A}-50051g`,
    APP_B,
  ]) {
    lab.dns.setA(`${label}.${TEST_DOMAIN}`, ["127.0.0.1"]);
  }
});

afterAll(async () => {
  for (const b of backends) await b.close();
  await new Promise<void>((r) => h2?.close(() => r()));
  await new Promise<void>((r) => tls?.close(() => r()));
  await lab?.close();
});

function options(extra: Partial<ProbeOptions> = {}): { o: ProbeOptions; lines: string[] } {
  const lines: string[] = [];
  const o: ProbeOptions = {
    baseDomain: TEST_DOMAIN,
    connect: [],
    resolve: new Map(),
    dnsServers: [lab.dns.address],
    port: lab.port,
    ca: [lab.ca.certPem],
    health: true,
    canary: {
      app: APP_A,
      forms: [
        { kind: "terminate" },
        { kind: "port", port: 8080 },
        { kind: "passthrough", port: 8443 },
        { kind: "h2", port: 50051 },
      ],
    },
    timeoutMs: 1500,
    attemptTimeoutMs: 1000,
    retryDelayMs: 200,
    print: (line) => lines.push(line),
    ...extra,
  };
  return { o, lines };
}

describe("gateway probe from outside (names resolved by DNS)", () => {
  it("passes every gate on a healthy gateway, a line per gate", async () => {
    const { o, lines } = options();
    expect(await runProbe(o)).toEqual({ ok: true });
    const gates = lines.map((l) => l.split(":")[0]);
    expect(gates).toEqual([
      `ok   dns health.${TEST_DOMAIN}`,
      "ok   certificate",
      `ok   dns health.${TEST_DOMAIN}`,
      "ok   health",
      `ok   dns ${APP_A}.${TEST_DOMAIN}`,
      `ok   canary route ${APP_A}`,
      `ok   dns ${APP_A}-8080.${TEST_DOMAIN}`,
      `ok   canary route ${APP_A}-8080`,
      `ok   dns ${APP_A}-8443s.${TEST_DOMAIN}`,
      `ok   canary route ${APP_A}-8443s`,
      `ok   dns ${APP_A}-50051g.${TEST_DOMAIN}`,
      `ok   canary route ${APP_A}-50051g`,
      "probe passed",
    ]);
    expect(lines.join("\n")).toContain(
      `https://${APP_A}-50051g.${TEST_DOMAIN}/ on 127.0.0.1:${lab.port} answered 200 over h2`,
    );
  });

  it("fails the certificate gate when the chain is not trusted", async () => {
    const { o, lines } = options({ ca: [] });
    expect(await runProbe(o)).toEqual({ ok: false, failed: "certificate" });
    expect(lines).toContain('probe failed: gate "certificate"');
    expect(lines.find((l) => l.startsWith("FAIL"))).toMatch(
      /^FAIL certificate: .*chain not trusted/,
    );
  });

  it("fails the certificate gate when the serial is not the region's", async () => {
    const { o, lines } = options({ expectedSerial: "0BADC0DE" });
    expect(await runProbe(o)).toEqual({ ok: false, failed: "certificate" });
    expect(lines.find((l) => l.startsWith("FAIL"))).toMatch(
      /serial .* the region's certificate is 0BADC0DE/,
    );
  });

  it("fails the health gate while the node drains (503), and passes once it is up again", async () => {
    lab.draining.set(true);
    try {
      const { o, lines } = options({ canary: undefined });
      expect(await runProbe(o)).toEqual({ ok: false, failed: "health" });
      expect(lines.find((l) => l.startsWith("FAIL"))).toMatch(/\/health answered 503, not 200$/);
    } finally {
      lab.draining.set(false);
    }
    expect((await runProbe(options({ canary: undefined }).o)).ok).toBe(true);
  });

  it("fails the canary route gate naming the URL form when the app has no instance", async () => {
    const { o, lines } = options({ canary: { app: APP_B, forms: [{ kind: "terminate" }] } });
    expect(await runProbe(o)).toEqual({ ok: false, failed: `canary route ${APP_B}` });
    expect(lines.at(-1)).toBe(`probe failed: gate "canary route ${APP_B}"`);
  });

  it("fails the h2 form when the backend port does not answer", async () => {
    const { o } = options({ canary: { app: APP_A, forms: [{ kind: "h2", port: 50052 }] } });
    lab.dns.setA(`${APP_A}-50052g.${TEST_DOMAIN}`, ["127.0.0.1"]);
    expect(await runProbe(o)).toEqual({ ok: false, failed: `canary route ${APP_A}-50052g` });
  });

  it("fails the dns gate for a name without an address", async () => {
    const { o } = options({ canary: { app: "cc0c", forms: [{ kind: "terminate" }] } });
    expect(await runProbe(o)).toEqual({ ok: false, failed: `dns cc0c.${TEST_DOMAIN}` });
  });
});

describe("gateway probe on a host (the rollout's gate)", () => {
  it("checks the ready file, the certificate, the registrations and a canary at one address", async () => {
    const dir = tempDir("probe-ready-");
    writeFileSync(join(dir, "ready"), "4242\n");
    const at = { host: "127.0.0.1", port: lab.port };
    const base = { connect: [at], dnsServers: [], health: false };
    const pass = options({
      ...base,
      ready: { file: join(dir, "ready"), pid: "4242" },
      registrations: { atLeast: 1, count: async () => lab.directory.all().length },
      canary: { app: APP_A, forms: [{ kind: "terminate" }] },
    });
    expect(await runProbe(pass.o)).toEqual({ ok: true });
    expect(pass.lines.map((l) => l.split(":")[0])).toEqual([
      "ok   ready",
      "ok   certificate",
      "ok   registrations",
      `ok   canary route ${APP_A}`,
      "probe passed",
    ]);

    const stale = options({ ...base, ready: { file: join(dir, "ready"), pid: "4343" } });
    expect(await runProbe(stale.o)).toEqual({ ok: false, failed: "ready" });
    expect(stale.lines[0]).toMatch(/names pid 4242, the service's main pid is 4343/);

    const missing = options({
      ...base,
      registrations: { atLeast: 3, count: async () => 1 },
    });
    expect(await runProbe(missing.o)).toEqual({ ok: false, failed: "registrations" });
    expect(missing.lines.find((l) => l.startsWith("FAIL"))).toBe(
      "FAIL registrations: Admin.Status lists 1 instances, expected at least 3",
    );
  });
});

describe("gateway probe's command line", () => {
  it("takes --region, --resolve with a wildcard, --ca and the canary's ports; exits 0, or 1 naming the gate", async () => {
    const lines: string[] = [];
    const args = [
      "--region",
      TEST_DOMAIN,
      "--resolve",
      `*.${TEST_DOMAIN}:127.0.0.1`,
      "--port",
      String(lab.port),
      "--ca",
      caFile,
      "--health",
      "--canary",
      APP_A,
      "--canary-port",
      "8080",
      "--canary-tls-port",
      "8443",
      "--canary-h2-port",
      "50051",
      "--timeout",
      "2",
    ];
    expect(await probeCommand(parseProbeArgs(args), (l) => lines.push(l))).toBe(0);
    expect(lines.filter((l) => l.startsWith("ok   canary route"))).toHaveLength(4);
    const failed: string[] = [];
    const wrong = [...args.slice(0, 8), "--canary", APP_B, "--timeout", "1"];
    expect(await probeCommand(parseProbeArgs(wrong), (l) => failed.push(l))).toBe(1);
    expect(failed.at(-1)).toBe(`probe failed: gate "canary route ${APP_B}"`);
  });

  it("refuses flags that cannot work together (exit 64)", async () => {
    expect(
      await probeCommand(parseProbeArgs(["--canary-port", "80", "--region", "x.example"])),
    ).toBe(64);
    expect(await probeCommand(parseProbeArgs(["--health"]))).toBe(64);
  });
});
