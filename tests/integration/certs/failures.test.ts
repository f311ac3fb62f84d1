/**
 * Failed renewals against real pebble and BIND: the old certificate keeps serving, the run
 * backs off, the challenge TXT values we added are removed (others stay), the CA's limits hold.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CertificateManager, CheckOutcome } from "../../../gateway-runtime/certs/index.js";
import { CertStore } from "../../../gateway-runtime/certs/store.js";
import { createLogger } from "../../../gateway-runtime/log/index.js";
import { TlsTerminator } from "../../../gateway-runtime/proxy/terminate.js";
import { createCa, issueLeaf, type TestCa } from "../../../testkit/certs.js";
import { startDnsServer, type TestDnsServer } from "../../helpers/dns-server.js";
import { type Pebble, startPebble } from "../../helpers/pebble.js";
import { CHALLENGE, type CertLab, NAMES, startCertLab } from "./harness.js";

let lab: CertLab;
let ca: TestCa;
let emptyDns: TestDnsServer;
let blindPebble: Pebble;

beforeAll(async () => {
  lab = await startCertLab({ records: ['_acme-challenge IN TXT "someone-else"'] });
  ca = createCa();
  emptyDns = await startDnsServer();
  // A CA that validates against a DNS server without our records: every challenge fails.
  blindPebble = await startPebble({ dnsServer: emptyDns.address });
});
afterAll(async () => {
  await lab?.close();
  await blindPebble?.close();
  await emptyDns?.close();
  ca?.cleanup();
});

/** A work directory whose live certificate (2 days left) is due for renewal. */
async function oldCertWorkdir(): Promise<{ wd: string; serial: string }> {
  const wd = lab.workdir();
  const store = new CertStore(wd);
  await store.init();
  const leaf = issueLeaf(ca, { days: 2 });
  await store.install(leaf.certPem, leaf.keyPem, Date.now());
  return { wd, serial: new X509Certificate(leaf.certPem).serialNumber };
}

const liveSerial = (wd: string) =>
  new X509Certificate(readFileSync(join(wd, "live", "cert.pem"))).serialNumber;

function expectFailure(outcome: CheckOutcome, code: string): void {
  expect(outcome.action).toBe("failed");
  expect(outcome.action === "failed" ? outcome.error.code : undefined).toBe(code);
}

async function expectBackoff(
  m: CertificateManager,
  failures: number,
  delayMs: number,
): Promise<void> {
  const status = m.status();
  expect(status.failures).toBe(failures);
  expect(status.lastRenewal?.ok).toBe(false);
  expect(Math.abs((status.nextCheck?.getTime() ?? 0) - (Date.now() + delayMs))).toBeLessThan(3000);
}

describe("DNS failures", () => {
  it("BIND down: the old certificate keeps serving, back-off 1 min then 2 min", async () => {
    const { wd, serial } = await oldCertWorkdir();
    const terminator = await TlsTerminator.create({
      certFile: join(wd, "live", "cert.pem"),
      keyFile: join(wd, "live", "key.pem"),
      handshakeTimeoutMs: 2000,
      watch: false,
    });
    const m = lab.manager(wd, { "core.certbot.auto_set_caa": false });
    m.onCertificate(() => terminator.reload());
    await m.start();
    await lab.bind.stop();
    try {
      const first = await m.checkNow();
      expectFailure(first, "E_CERT_DNS");
      expect(first.action === "failed" && first.error.message).toMatch(/ECONNREFUSED/);
      await expectBackoff(m, 1, 60_000);
      expectFailure(await m.checkNow(), "E_CERT_DNS");
      await expectBackoff(m, 2, 120_000);
    } finally {
      await lab.bind.start();
    }
    expect(liveSerial(wd)).toBe(serial);
    expect(m.status().serial).toBe(serial.toUpperCase());
    expect((await terminator.reload()).ok).toBe(true);
    expect(terminator.current().serial).toBe(serial);
    terminator.close();
    expect(await lab.bind.dig(CHALLENGE, "TXT")).toEqual(["someone-else"]);
  });

  it("wrong TSIG secret: E_CERT_DNS (BADSIG), old certificate kept, expiry warned once a day, no secret logged", async () => {
    const { wd, serial } = await oldCertWorkdir();
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const secret = Buffer.alloc(32, 3).toString("base64");
    const m = lab.manager(
      wd,
      { "core.certbot.rfc2136.tsig_secret": secret },
      { log: createLogger("debug", sink) },
    );
    await m.start();
    const outcome = await m.checkNow();
    expectFailure(outcome, "E_CERT_DNS");
    expect(outcome.action === "failed" && outcome.error.message).toMatch(/BADSIG/);
    expect(liveSerial(wd)).toBe(serial);
    await expectBackoff(m, 1, 60_000);
    expectFailure(await m.checkNow(), "E_CERT_DNS");
    const logs = lines.map((l) => JSON.parse(l) as { level: number; msg: string; code?: string });
    expect(logs.filter((l) => l.msg === "the certificate expires within 7 days")).toHaveLength(1);
    expect(logs.filter((l) => l.msg === "certificate renewal failed").map((l) => l.code)).toEqual([
      "E_CERT_DNS",
      "E_CERT_DNS",
    ]);
    expect(lines.join("")).not.toContain(secret);
    expect(lines.join("")).not.toContain(lab.bind.secret);
  });

  it("TXT never visible on the check servers: E_CERT_DNS_PROPAGATION, our values removed", async () => {
    const { wd, serial } = await oldCertWorkdir();
    const m = lab.manager(wd, {
      "core.certbot.dns_check_servers": [emptyDns.address],
      "core.certbot.dns_check_timeout": "800ms",
    });
    await m.start();
    expectFailure(await m.checkNow(), "E_CERT_DNS_PROPAGATION");
    expect(emptyDns.queries(CHALLENGE)).toBeGreaterThan(0);
    expect(await lab.bind.dig(CHALLENGE, "TXT")).toEqual(["someone-else"]);
    expect(liveSerial(wd)).toBe(serial);
  });

  it("renew_timeout aborts the run: E_CERT_TIMEOUT, our values removed", async () => {
    const { wd, serial } = await oldCertWorkdir();
    emptyDns.setMode("silent");
    try {
      const m = lab.manager(wd, {
        "core.certbot.dns_check_servers": [emptyDns.address],
        "core.certbot.dns_check_timeout": "30s",
        "core.certbot.renew_timeout": "1s",
      });
      await m.start();
      const started = Date.now();
      expectFailure(await m.checkNow(), "E_CERT_TIMEOUT");
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      emptyDns.setMode("answer");
    }
    expect(await lab.bind.dig(CHALLENGE, "TXT")).toEqual(["someone-else"]);
    expect(liveSerial(wd)).toBe(serial);
  });
});

describe("CA unreachable", () => {
  it("aborts at renew_timeout even inside acme-client's retries; the old certificate stays", async () => {
    const { wd, serial } = await oldCertWorkdir();
    const down = await startPebble({ dnsServer: emptyDns.address });
    await down.stop();
    try {
      const m = lab.manager(wd, {
        "core.certbot.acme_url": down.directoryUrl,
        "core.certbot.acme_ca_file": down.caFile,
        "core.certbot.renew_timeout": "2s",
      });
      await m.start();
      const started = Date.now();
      expectFailure(await m.checkNow(), "E_CERT_TIMEOUT");
      // The abort lands at 2 s; a retry delay acme-client already started (5 s) runs out.
      expect(Date.now() - started).toBeLessThan(14_000); // not the next retry's end (~15 s)
      await expectBackoff(m, 1, 60_000);
      expect(liveSerial(wd)).toBe(serial);
    } finally {
      await down.close();
    }
  }, 40_000);
});

describe("CA rejection", () => {
  it("failed validation: old certificate kept, ledger counts it, values removed; the 6th try is held back", async () => {
    const { wd, serial } = await oldCertWorkdir();
    const m = lab.manager(wd, {
      "core.certbot.acme_url": blindPebble.directoryUrl,
      "core.certbot.acme_ca_file": blindPebble.caFile,
    });
    await m.start();
    const first = await m.checkNow();
    expectFailure(first, "E_CERT_CA_REJECTED");
    expect(first.action === "failed" && first.error.message).toMatch(
      /validation failed: app\.test\.example/,
    );
    await expectBackoff(m, 1, 60_000);
    expect(await lab.bind.dig(CHALLENGE, "TXT")).toEqual(["someone-else"]);
    expect(emptyDns.queries(CHALLENGE)).toBeGreaterThan(0);
    expect(liveSerial(wd)).toBe(serial);

    for (let i = 2; i <= 5; i++) expectFailure(await m.checkNow(), "E_CERT_CA_REJECTED");
    const ledger = JSON.parse(readFileSync(join(wd, "ledger.json"), "utf8")) as {
      failures: { name: string; at: number }[];
    };
    expect(ledger.failures.map((f) => f.name).sort()).toEqual(
      [...NAMES, ...NAMES, ...NAMES, ...NAMES, ...NAMES].sort(),
    );

    const held = await m.checkNow();
    expect(held.action).toBe("rate-limited");
    const firstFailure = Math.min(...ledger.failures.map((f) => f.at));
    expect(held.action === "rate-limited" && held.error.retryAt).toBe(firstFailure + 3_600_000);
    expect(m.status().lastRenewal?.code).toBe("E_CERT_RATE_LIMITED");
    expect(
      Math.abs((m.status().nextCheck?.getTime() ?? 0) - (firstFailure + 3_600_000)),
    ).toBeLessThan(1000);
    expect(liveSerial(wd)).toBe(serial);
    expect(await lab.bind.dig(CHALLENGE, "TXT")).toEqual(["someone-else"]);
  });
});
