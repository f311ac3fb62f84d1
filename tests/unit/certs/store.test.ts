import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { archiveName, CertStore } from "../../../gateway-runtime/certs/store.js";
import { createCa, issueLeaf } from "../../../testkit/certs.js";

const ca = createCa();
const root = mkdtempSync(join(tmpdir(), "gw-store-"));
afterAll(() => {
  ca.cleanup();
  rmSync(root, { recursive: true, force: true });
});
let n = 0;
const workdir = () => join(root, `w${n++}`);
const T0 = Date.parse("2026-03-01T10:00:00.000Z");

describe("CertStore", () => {
  it("names archives sortably, without colons", () => {
    expect(archiveName(T0)).toBe("2026-03-01T10-00-00.000Z");
  });

  it("installs into archive/<ts>/ and points the live symlink at it; key 0600", async () => {
    const store = new CertStore(workdir());
    await store.init();
    expect(await store.readLive()).toBeUndefined();
    const leaf = issueLeaf(ca);
    const dir = await store.install(leaf.certPem, leaf.keyPem, T0);
    expect(dir).toBe(join(store.workdir, "archive", "2026-03-01T10-00-00.000Z"));
    expect(readlinkSync(join(store.workdir, "live"))).toBe(
      join("archive", "2026-03-01T10-00-00.000Z"),
    );
    expect(statSync(store.keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(store.certFile, "utf8")).toBe(leaf.certPem);
    const live = await store.readLive();
    expect(live && "info" in live ? live.info.serial : undefined).toBe(leaf.serial.toUpperCase());
  });

  it("swaps to a new pair and keeps the old one as a backup", async () => {
    const store = new CertStore(workdir());
    await store.init();
    const [a, b] = [issueLeaf(ca), issueLeaf(ca)];
    await store.install(a.certPem, a.keyPem, T0);
    await store.install(b.certPem, b.keyPem, T0); // same millisecond: a suffix keeps both
    expect(await store.archives()).toEqual([
      "2026-03-01T10-00-00.000Z",
      "2026-03-01T10-00-00.000Z-1",
    ]);
    expect(readFileSync(store.keyFile, "utf8")).toBe(b.keyPem);
    expect(
      readFileSync(join(store.workdir, "archive", "2026-03-01T10-00-00.000Z", "key.pem"), "utf8"),
    ).toBe(a.keyPem);
  });

  it("moves a plain live directory into the archive once", async () => {
    const store = new CertStore(workdir());
    const old = issueLeaf(ca);
    mkdirSync(join(store.workdir, "live"), { recursive: true });
    writeFileSync(store.certFile, old.certPem);
    writeFileSync(store.keyFile, old.keyPem);
    await store.init();
    const fresh = issueLeaf(ca);
    await store.install(fresh.certPem, fresh.keyPem, T0);
    expect(lstatSync(join(store.workdir, "live")).isSymbolicLink()).toBe(true);
    expect(readFileSync(store.certFile, "utf8")).toBe(fresh.certPem);
    const moved = join(
      store.workdir,
      "archive",
      "2026-03-01T10-00-00.000Z-previous-live",
      "cert.pem",
    );
    expect(readFileSync(moved, "utf8")).toBe(old.certPem);
  });

  it("prunes the oldest backups but never the live one", async () => {
    const store = new CertStore(workdir());
    await store.init();
    const leaves = [issueLeaf(ca), issueLeaf(ca), issueLeaf(ca), issueLeaf(ca)];
    for (const [i, l] of leaves.entries()) await store.install(l.certPem, l.keyPem, T0 + i * 1000);
    expect(await store.prune(2)).toEqual(["2026-03-01T10-00-00.000Z", "2026-03-01T10-00-01.000Z"]);
    expect(await store.archives()).toEqual([
      "2026-03-01T10-00-02.000Z",
      "2026-03-01T10-00-03.000Z",
    ]);
    // Live points at an older archive (e.g. a restored backup): pruning keeps it.
    await store.install(leaves[0]?.certPem ?? "", leaves[0]?.keyPem ?? "", T0 - 1000);
    expect(await store.prune(1)).toEqual(["2026-03-01T10-00-02.000Z"]);
    expect(await store.archives()).toEqual([
      "2026-03-01T09-59-59.000Z",
      "2026-03-01T10-00-03.000Z",
    ]);
  });

  it("reports an unreadable live certificate instead of throwing", async () => {
    const store = new CertStore(workdir());
    mkdirSync(join(store.workdir, "live"), { recursive: true });
    writeFileSync(store.certFile, "not a certificate");
    writeFileSync(store.keyFile, "x");
    expect(await store.readLive()).toEqual({ error: "no certificate in the chain" });
  });

  it("removes temp links a crash left behind", async () => {
    const store = new CertStore(workdir());
    mkdirSync(store.workdir, { recursive: true });
    writeFileSync(join(store.workdir, "live.0badc0de.tmp"), "");
    writeFileSync(join(store.workdir, "live.keep"), "");
    await store.init();
    expect(() => lstatSync(join(store.workdir, "live.0badc0de.tmp"))).toThrow();
    expect(lstatSync(join(store.workdir, "live.keep")).isFile()).toBe(true);
  });
});
