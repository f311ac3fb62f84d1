/**
 * Crash-safe file replacement: after a crash at any moment the file holds either its old or its
 * new bytes, never a mix. Write a temp file in the same directory, fsync it, rename it over the
 * target, fsync the directory (so the rename itself survives a power loss).
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

function tempName(path: string): string {
  return `${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
}

/** Matches exactly the names `tempName` makes for `path`, so no other file is ever removed. */
function tempPattern(path: string): RegExp {
  const base = basename(path).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${base}\\.\\d+\\.[0-9a-f]{8}\\.tmp$`);
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates `dir` (mode 0700) and missing parents, and makes their directory entries durable. */
export async function ensureDir(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (created === undefined) return;
  for (let d = dir; dirname(d) !== d; d = dirname(d)) {
    await syncDir(dirname(d));
    if (d === created) break;
  }
}

/** Replaces `path` with `data` atomically and durably; the file gets `mode` (default 0600). */
export async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, tempName(path));
  try {
    const handle = await open(tmp, "wx", mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    // The write error is what the caller needs; a temp file that cannot be removed now is
    // removed by `removeStrayTemps` at the next start.
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}

/** Removes temp files a crashed `writeFileAtomic(path)` left behind; returns their names. */
export async function removeStrayTemps(path: string): Promise<string[]> {
  const dir = dirname(path);
  const pattern = tempPattern(path);
  const stray = (await readdir(dir)).filter((name) => pattern.test(name));
  await Promise.all(stray.map((name) => unlink(join(dir, name))));
  return stray;
}
