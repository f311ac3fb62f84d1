/**
 * Temporary directories and files for tests that remove themselves: operators run this suite on
 * their own CI machines, and it must leave nothing in the temp directory behind.
 *
 * Everything made here is removed after the test file that imported this module finishes (one
 * file-level afterAll, registered on import; afterAll hooks run in reverse order of registration,
 * so this one runs after the file's own hooks have stopped the processes that use the
 * directories), and again, as a backstop, when the process exits. Tests only: importing this
 * registers a vitest hook.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";

const made = new Set<string>();

function removeAll(): void {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
  made.clear();
}

afterAll(removeAll);
process.once("exit", removeAll);

/** A new empty directory `<tmpdir>/<prefix>XXXXXX`, removed with everything in it after the file. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.add(dir);
  return dir;
}

/** Removes a directory from tempDir now, for tests that make many (one per property run, say). */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  made.delete(dir);
}

/** `text` written to `name` in a new temp directory (see tempDir); returns the file's path. */
export function tempFile(prefix: string, name: string, text: string | Uint8Array = ""): string {
  const file = join(tempDir(prefix), name);
  writeFileSync(file, text);
  return file;
}
