/**
 * CertificateManager against a real pebble and a real BIND (RFC 2136 + TSIG): first issuance,
 * CAA, account reuse, renewal inside the window, one renewer at a time.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CaaRecord,
  type CertificateEvent,
  createDnsProvider,
  type DnsProvider,
} from "../../../gateway-runtime/certs/index.js";
import type { DnsCallOptions } from "../../../gateway-runtime/certs/dns/provider.js";
import { splitPemChain } from "../../../gateway-runtime/certs/verify.js";
import { BASE, CHALLENGE, type CertLab, NAMES, startCertLab } from "./harness.js";

let lab: CertLab;
let root: X509Certificate;

beforeAll(async () => {
  lab = await startCertLab({
    records: [
      '_acme-challenge IN TXT "someone-else"',
      '@ IN CAA 0 iodef "mailto:sec@app.test.example"',
    ],
  });
  root = new X509Certificate(await lab.pebble.rootPem());
});
afterAll(async () => {
  await lab?.close();
});

const mode = (path: string) => statSync(path).mode & 0o777;
const liveSerial = (wd: string) =>
  new X509Certificate(readFileSync(join(wd, "live", "cert.pem"))).serialNumber;
const account = (wd: string) =>
  JSON.parse(readFileSync(join(wd, "account.json"), "utf8")) as { url: string };
const caaFor = (url: string) =>
  ["issue", "issuewild"].map(
    (tag) => `0 ${tag} "127.0.0.1; accounturi=${url}; validationmethods=dns-01"`,
  );

/** Checks the chain up to pebble's root with node:crypto, as a client would. */
function verifyChain(pem: string): X509Certificate {
  const certs = splitPemChain(pem).map((p) => new X509Certificate(p));
  expect(certs.length).toBeGreaterThanOrEqual(2);
  const all = [...certs, root];
  for (let i = 0; i + 1 < all.length; i++) {
    const child = all[i] as X509Certificate;
    const parent = all[i + 1] as X509Certificate;
    expect(child.checkIssued(parent)).toBe(true);
    expect(child.verify(parent.publicKey)).toBe(true);
  }
  return certs[0] as X509Certificate;
}

describe("first issuance", () => {
  let wd: string;
  const events: CertificateEvent[] = [];

  it("issues *.<base> + <base>, chained to pebble's root, key 0600, records cleaned", async () => {
    wd = lab.workdir();
    const m = lab.manager(wd);
    m.onCertificate((e) => {
      events.push(e);
    });
    await m.start();
    const started = Date.now();
    expect(await m.checkNow()).toEqual({ action: "renewed", reason: "missing" });
    expect(Date.now() - started).toBeLessThan(10_000);

    const leaf = verifyChain(readFileSync(join(wd, "live", "cert.pem"), "utf8"));
    expect(leaf.subjectAltName?.split(", ").sort()).toEqual(NAMES.map((n) => `DNS:${n}`).sort());
    expect(leaf.checkPrivateKey(createPrivateKey(readFileSync(join(wd, "live", "key.pem"))))).toBe(
      true,
    );
    expect(mode(join(wd, "live", "key.pem"))).toBe(0o600);
    expect(mode(join(wd, "account.key"))).toBe(0o600);
    expect(mode(join(wd, "account.json"))).toBe(0o600);
    expect(await lab.bind.dig(CHALLENGE, "TXT")).toEqual(["someone-else"]);

    expect(events).toHaveLength(1);
    expect(events[0]?.info.serial).toBe(leaf.serialNumber);
    expect(events[0]?.certFile).toBe(join(wd, "live", "cert.pem"));
    expect((await m.whenReady()).serial).toBe(leaf.serialNumber);
    const status = m.status();
    expect(status.serial).toBe(leaf.serialNumber);
    expect(status.notAfter?.toISOString()).toBe(new Date(leaf.validTo).toISOString());
    expect(status.lastRenewal?.ok).toBe(true);
    expect(status.failures).toBe(0);
  });

  it("writes CAA issue and issuewild pinned to the account and dns-01, keeping iodef", async () => {
    const { url } = account(wd);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/my-account\//);
    expect((await lab.bind.dig(BASE, "CAA")).sort()).toEqual(
      [...caaFor(url), '0 iodef "mailto:sec@app.test.example"'].sort(),
    );
  });

  it("does nothing while the certificate is outside the renewal window", async () => {
    const m = lab.manager(wd);
    await m.start();
    const before = liveSerial(wd);
    expect(await m.checkNow()).toEqual({ action: "none", reason: "none" });
    expect(liveSerial(wd)).toBe(before);
    const next = m.status().nextCheck?.getTime() ?? 0;
    expect(Math.abs(next - (Date.now() + 3_600_000))).toBeLessThan(5000);
  });

  it("a forced check asked while a routine one runs still renews, after it", async () => {
    const m = lab.manager(wd);
    await m.start();
    const before = liveSerial(wd);
    const routine = m.checkNow();
    const forced = m.checkNow({ force: true });
    expect(await routine).toEqual({ action: "none", reason: "none" });
    expect(await forced).toEqual({ action: "renewed", reason: "forced" });
    expect(liveSerial(wd)).not.toBe(before);
  });

  it("reuses the stored account after a restart (same URL, same key, CAA untouched)", async () => {
    const key = readFileSync(join(wd, "account.key"), "utf8");
    const { url } = account(wd);
    const m = lab.manager(wd);
    await m.start();
    expect(await m.checkNow({ force: true })).toEqual({ action: "renewed", reason: "forced" });
    expect(readFileSync(join(wd, "account.key"), "utf8")).toBe(key);
    expect(account(wd).url).toBe(url);
    expect((await lab.bind.dig(BASE, "CAA")).filter((r) => !r.includes("iodef")).sort()).toEqual(
      caaFor(url).sort(),
    );
  });

  it("SetCaa writes the pinned records back after someone removed them, nothing else", async () => {
    const { url } = account(wd);
    const certbot = lab.config(wd).core.certbot;
    if (!certbot.enabled) throw new Error("the cert lab runs with certbot enabled");
    const iodef = { flags: 0, tag: "iodef", value: "mailto:sec@app.test.example" };
    await createDnsProvider(certbot, BASE).setCaa(BASE, [iodef]);
    expect(await lab.bind.dig(BASE, "CAA")).toEqual(['0 iodef "mailto:sec@app.test.example"']);
    const before = liveSerial(wd);
    await lab.manager(wd).setCaa();
    expect((await lab.bind.dig(BASE, "CAA")).sort()).toEqual(
      [...caaFor(url), '0 iodef "mailto:sec@app.test.example"'].sort(),
    );
    expect(liveSerial(wd)).toBe(before);
  });

  it("renews inside the window: new serial live, the old pair kept as a backup", async () => {
    const before = liveSerial(wd);
    const archivesBefore = readdirSync(join(wd, "archive")).sort();
    const m = lab.manager(wd, { "core.certbot.renew_before_expiration": "3650d" });
    const seen: string[] = [];
    m.onCertificate((e) => {
      seen.push(e.info.serial);
    });
    await m.start();
    expect(await m.checkNow()).toEqual({ action: "renewed", reason: "expiring" });
    const after = liveSerial(wd);
    expect(after).not.toBe(before);
    expect(seen).toEqual([after]);
    const archives = readdirSync(join(wd, "archive")).sort();
    expect(archives).toHaveLength(archivesBefore.length + 1);
    const previous = archives[archives.length - 2] as string;
    expect(
      new X509Certificate(readFileSync(join(wd, "archive", previous, "cert.pem"))).serialNumber,
    ).toBe(before);
  });

  it("uses an account from config (account_url + account_key) and stores none", async () => {
    const other = lab.workdir();
    const m = lab.manager(other, {
      "core.certbot.account_url": account(wd).url,
      "core.certbot.account_key": readFileSync(join(wd, "account.key"), "utf8"),
    });
    await m.start();
    expect((await m.checkNow()).action).toBe("renewed");
    expect(readdirSync(other).sort()).toEqual(["archive", "ledger.json", "live"]);
  });

  it("registers a new account when the stored one belongs to another CA, keeping the old files", async () => {
    const moved = lab.workdir();
    const oldKey = readFileSync(join(wd, "account.key"), "utf8");
    const oldFile = { ...account(wd), directoryUrl: "https://other-ca.example/dir" };
    writeFileSync(join(moved, "account.key"), oldKey, { mode: 0o600 });
    writeFileSync(join(moved, "account.json"), JSON.stringify(oldFile), { mode: 0o600 });
    const m = lab.manager(moved, { "core.certbot.auto_set_caa": false });
    await m.start();
    expect((await m.checkNow()).action).toBe("renewed");
    const kept = readdirSync(moved)
      .filter((f) => f.startsWith("account-"))
      .sort();
    expect(kept).toHaveLength(2);
    expect(readFileSync(join(moved, kept[1] as string), "utf8")).toBe(oldKey);
    expect(readFileSync(join(moved, "account.key"), "utf8")).not.toBe(oldKey);
    const fresh = JSON.parse(readFileSync(join(moved, "account.json"), "utf8"));
    expect(fresh.directoryUrl).toBe(lab.pebble.directoryUrl);
    expect(fresh.url).not.toBe(oldFile.url);
  });

  it("pins CAA to a new account before ordering with it", async () => {
    const fresh = lab.workdir();
    const certbot = lab.config(fresh).core.certbot;
    if (!certbot.enabled) throw new Error("the cert lab runs with certbot enabled");
    const real = createDnsProvider(certbot, BASE);
    const calls: string[] = [];
    const logged =
      <A extends unknown[], R>(what: string, f: (...a: A) => Promise<R>) =>
      (...a: A): Promise<R> => {
        calls.push(what);
        return f(...a);
      };
    const recording: DnsProvider = {
      name: "recording",
      setTxt: logged("setTxt", (n: string, v: string, o?: DnsCallOptions) => real.setTxt(n, v, o)),
      removeTxt: logged("removeTxt", (n: string, v: string, o?: DnsCallOptions) =>
        real.removeTxt(n, v, o),
      ),
      setCaa: logged("setCaa", (n: string, r: readonly CaaRecord[], o?: DnsCallOptions) =>
        real.setCaa(n, r, o),
      ),
      listCaa: logged("listCaa", (n: string, o?: DnsCallOptions) =>
        real.listCaa ? real.listCaa(n, o) : Promise.resolve([]),
      ),
    };
    const m = lab.manager(fresh, {}, { dns: recording });
    await m.start();
    expect((await m.checkNow()).action).toBe("renewed");
    expect(calls).toEqual(["listCaa", "setCaa", "setTxt", "setTxt", "removeTxt", "removeTxt"]);
    const { url } = account(fresh);
    expect(url).not.toBe(account(wd).url);
    expect((await lab.bind.dig(BASE, "CAA")).sort()).toEqual(
      [...caaFor(url), '0 iodef "mailto:sec@app.test.example"'].sort(),
    );
  });
});

describe("one renewer at a time", () => {
  it("lets one of two managers on one work directory renew; the other picks the result up", async () => {
    const wd = lab.workdir();
    const a = lab.manager(wd);
    const b = lab.manager(wd);
    const seenByB: string[] = [];
    b.onCertificate((e) => {
      seenByB.push(e.info.serial);
    });
    await Promise.all([a.start(), b.start()]);
    const outcomes = await Promise.all([a.checkNow(), b.checkNow()]);
    expect(outcomes.map((o) => o.action).sort()).toEqual(["locked", "renewed"]);
    const ledger = JSON.parse(readFileSync(join(wd, "ledger.json"), "utf8")) as {
      issued: unknown[];
    };
    expect(ledger.issued).toHaveLength(1);
    const serial = liveSerial(wd);
    const loser = outcomes[0]?.action === "locked" ? a : b;
    expect((await loser.checkNow()).action).toBe("none");
    expect(loser.status().serial).toBe(serial);
    if (loser === b) expect(seenByB).toEqual([serial]);
  });
});
