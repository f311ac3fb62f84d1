import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Keeps the suite from leaving anything in the temp directory (operators run it on their CI
 * machines). Each run gets a private TMPDIR, set before the test workers start so they and every
 * process they spawn make their temp files in it; at the end whatever is left there is named
 * and the run fails, and the directory is removed either way. Private, so that other runs on
 * the same machine at the same time cannot be blamed for a leak or hide one.
 */

/** Caches that tools keep in the temp dir on purpose, to reuse across runs: not leaks. */
const CACHES = [/^node-compile-cache$/, /^tsx-\d+$/];

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), "gw-test-tmp-"));
  // As open as /tmp itself (mkdtemp makes it 0700): tests that run steps as another user (SSH
  // as a sudo user, say) need it to get through to their files.
  chmodSync(root, 0o1777);
  const outer = process.env.TMPDIR;
  process.env.TMPDIR = root;
  return () => {
    if (outer === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = outer;
    const left = readdirSync(root).filter((name) => !CACHES.some((c) => c.test(name)));
    rmSync(root, { recursive: true, force: true });
    if (left.length === 0) return;
    // vitest prints an error thrown here but still exits 0: the exit code is set as well.
    process.exitCode = 1;
    throw new Error(
      `the tests left ${left.length} entries in the temp dir (removed now): ${left.sort().join(", ")}; ` +
        "make temp dirs with testkit/tmp.ts, or remove them where they are made",
    );
  };
}
