/**
 * Certificate files in the work directory:
 *
 *   archive/<timestamp>/cert.pem   chain, leaf first (0644)
 *   archive/<timestamp>/key.pem    private key (0600)
 *   live -> archive/<timestamp>    symlink to the pair in use
 *
 * The proxy reads `live/cert.pem` and `live/key.pem`. A new pair is written completely into a
 * fresh archive directory (each file fsynced), then a new symlink is renamed over `live`: one
 * rename(2), so a reader that opens both files after it sees the new pair and a reader before it
 * sees the old pair. A reader that opens one file before and one after the swap gets a
 * mismatched pair; the proxy's reload checks that the key matches and keeps the old context,
 * and the manager's `onCertificate` reload, which runs after the swap, then loads the new pair.
 * Every archive directory is a backup; the oldest are pruned, never the live one.
 *
 * A `live` that is a plain directory (certificates put there by hand or by an older version) is
 * moved into `archive/` once, just before the first swap; during that one rename there is no
 * `live` and a reload in that instant keeps the certificate it has.
 */
import { randomBytes } from "node:crypto";
import {
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  unlink,
} from "node:fs/promises";
import { join } from "node:path";
import { ensureDir, syncDir, writeFileAtomic } from "../files/atomic.js";
import { CertError, reasonOf } from "./errors.js";
import { type CertificateInfo, inspectChain } from "./verify.js";

export const LIVE = "live";
export const ARCHIVE = "archive";

export interface LivePair {
  readonly certPem: string;
  readonly keyPem: string;
  readonly info: CertificateInfo;
}

const isNotFound = (e: unknown): boolean => (e as NodeJS.ErrnoException).code === "ENOENT";

/** `2026-01-02T03-04-05.678Z`: sortable, no colons. */
export function archiveName(now: number): string {
  return new Date(now).toISOString().replace(/:/g, "-");
}

export class CertStore {
  readonly workdir: string;
  readonly certFile: string;
  readonly keyFile: string;

  constructor(workdir: string) {
    this.workdir = workdir;
    this.certFile = join(workdir, LIVE, "cert.pem");
    this.keyFile = join(workdir, LIVE, "key.pem");
  }

  /** Creates the work directory and removes temp links a crash left behind. */
  async init(): Promise<void> {
    await this.#guard("preparing the work directory", async () => {
      await ensureDir(this.workdir);
      for (const name of await readdir(this.workdir)) {
        if (/^live\.[0-9a-f]{8}\.tmp$/.test(name)) await unlink(join(this.workdir, name));
      }
    });
  }

  /** The live pair, or undefined when there is none or it cannot be read. */
  async readLive(): Promise<LivePair | { error: string } | undefined> {
    let certPem: string;
    let keyPem: string;
    try {
      [certPem, keyPem] = await Promise.all([
        readFile(this.certFile, "utf8"),
        readFile(this.keyFile, "utf8"),
      ]);
    } catch (e) {
      return isNotFound(e) ? undefined : { error: reasonOf(e) };
    }
    try {
      return { certPem, keyPem, info: inspectChain(certPem) };
    } catch (e) {
      return { error: reasonOf(e) };
    }
  }

  /** Writes the pair into a new archive directory and points `live` at it. */
  async install(certPem: string, keyPem: string, now: number): Promise<string> {
    return this.#guard("installing the certificate", async () => {
      const archive = join(this.workdir, ARCHIVE);
      await ensureDir(archive);
      let name = archiveName(now);
      for (let i = 1; await exists(join(archive, name)); i++) name = `${archiveName(now)}-${i}`;
      const dir = join(archive, name);
      await mkdir(dir, { mode: 0o700 });
      await writeFileAtomic(join(dir, "key.pem"), keyPem, 0o600);
      await writeFileAtomic(join(dir, "cert.pem"), certPem, 0o644);
      await syncDir(archive);
      const tmp = join(this.workdir, `live.${randomBytes(4).toString("hex")}.tmp`);
      await symlink(join(ARCHIVE, name), tmp);
      const live = join(this.workdir, LIVE);
      const current = await lstat(live).catch((e: unknown) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
      if (current?.isDirectory()) await rename(live, join(archive, `${name}-previous-live`));
      await rename(tmp, live);
      await syncDir(this.workdir);
      return dir;
    });
  }

  /** The archive directory `live` points at, if it is a symlink. */
  async liveTarget(): Promise<string | undefined> {
    try {
      return await readlink(join(this.workdir, LIVE));
    } catch {
      return undefined;
    }
  }

  /** Archive directory names, oldest first. */
  async archives(): Promise<string[]> {
    try {
      return (await readdir(join(this.workdir, ARCHIVE))).sort();
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  }

  /** Removes all but the newest `keep` archives; the live one always stays. */
  async prune(keep: number): Promise<string[]> {
    return this.#guard("pruning old certificates", async () => {
      const target = await this.liveTarget();
      const all = await this.archives();
      const doomed = all
        .slice(0, Math.max(0, all.length - keep))
        .filter((n) => target !== join(ARCHIVE, n));
      for (const n of doomed) await rm(join(this.workdir, ARCHIVE, n), { recursive: true });
      return doomed;
    });
  }

  async #guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof CertError) throw e;
      throw new CertError("E_CERT_STORE", `${what} in ${this.workdir}: ${reasonOf(e)}`, {
        cause: e,
      });
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}
