/**
 * A small text value the certificate manager keeps outside its certificate files: the rate
 * ledger, and in a region (`core.cluster`) the region's certificate. On one host it is a file
 * in the work directory (`FileRegister`); in a region it is an etcd key (`cluster/`), so the
 * same reading and merging code serves both and only the storage differs.
 */
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../files/atomic.js";
import { CertError, reasonOf } from "./errors.js";

export interface RegisterValue {
  readonly text: string;
  /** Changes with every write; what `write` compares against. */
  readonly version: number;
}

export interface Register {
  /** For messages: the file or key. */
  readonly name: string;
  /** The value now, or undefined when nothing was written yet. */
  read(): Promise<RegisterValue | undefined>;
  /**
   * Writes `text` if the value is still at `version` (0: nothing written yet); false when
   * another write came first (the caller reads again and merges).
   */
  write(text: string, version: number): Promise<boolean>;
}

/**
 * A file, written atomically. Only the holder of the renewal lock writes it, so it does not
 * compare versions: every write wins.
 */
export class FileRegister implements Register {
  readonly name: string;

  constructor(readonly path: string) {
    this.name = path;
  }

  async read(): Promise<RegisterValue | undefined> {
    try {
      return { text: await readFile(this.path, "utf8"), version: 0 };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new CertError("E_CERT_STORE", `cannot read ${this.path}: ${reasonOf(e)}`, { cause: e });
    }
  }

  async write(text: string): Promise<boolean> {
    try {
      await writeFileAtomic(this.path, text, 0o600);
      return true;
    } catch (e) {
      throw new CertError("E_CERT_STORE", `cannot write ${this.path}: ${reasonOf(e)}`, {
        cause: e,
      });
    }
  }
}

/** Conflicting writers are few (the hosts of one region) and rare; this bounds the retries. */
const MAX_UPDATES = 8;

/** Reads, changes and writes `register` until the write is not overtaken by another. */
export async function updateRegister(
  register: Register,
  change: (text: string | undefined) => string,
): Promise<void> {
  for (let attempt = 0; attempt < MAX_UPDATES; attempt++) {
    const current = await register.read();
    if (await register.write(change(current?.text), current?.version ?? 0)) return;
  }
  throw new CertError(
    "E_CERT_CLUSTER",
    `${register.name} kept changing under ${MAX_UPDATES} attempts to update it`,
  );
}
