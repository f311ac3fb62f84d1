/**
 * HAProxy runs in the engine's directory. It changes into the configuration file's directory
 * while it parses and then back to where it started; as the gateway's unprivileged user,
 * started from a directory it may not enter (root's home, in the lab's service manager), it
 * failed with "Impossible to get back to initial directory".
 */
import { chmodSync, mkdtempSync, realpathSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkHaproxyConfig } from "../../../gateway-runtime/engine/haproxy/process.js";
import { FILES } from "../../../gateway-runtime/engine/haproxy/layout.js";

describe("checkHaproxyConfig", () => {
  it("runs haproxy -c from the engine's directory", () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "hx-cwd-")));
    // A stand-in for the binary that succeeds only when started there.
    const binary = join(dir, "fake-haproxy");
    writeFileSync(
      binary,
      `#!/bin/sh\n[ "$(pwd -P)" = "${dir}" ] || { echo "cwd $(pwd -P)" >&2; exit 1; }\n`,
    );
    chmodSync(binary, 0o755);
    writeFileSync(join(dir, FILES.config), "global\n");
    expect(() => checkHaproxyConfig({ dir, binary }, join(dir, FILES.config))).not.toThrow();
  });
});
