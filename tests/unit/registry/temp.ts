/**
 * Temp directories for the registry tests, apart from net.ts: the crash-writer child imports
 * net.ts outside vitest, and testkit/tmp registers a vitest hook.
 */
import { removeTempDir, tempDir as fileTempDir } from "../../../testkit/tmp.js";

/**
 * A fresh temp directory; `cleanup` removes it now. One that a failed or timed-out test never
 * cleaned up is still removed after the file (testkit/tmp).
 */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = fileTempDir("registry-test-");
  return { dir, cleanup: async () => removeTempDir(dir) };
}
