/**
 * HAProxy runs in the engine's directory. It changes into the configuration file's directory
 * while it parses and then back to where it started; as the gateway's unprivileged user,
 * started from a directory it may not enter (root's home, in the lab's service manager), it
 * failed with "Impossible to get back to initial directory".
 */
import { chmodSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkHaproxyConfig } from "../../../gateway-runtime/engine/haproxy/process.js";
import { FILES } from "../../../gateway-runtime/engine/haproxy/layout.js";
import { tempDir } from "../../../testkit/tmp.js";

describe("checkHaproxyConfig", () => {
  it("runs haproxy -c from the engine's directory", async () => {
    const dir = realpathSync(tempDir("hx-cwd-"));
    // A stand-in for the binary that succeeds only when started there.
    const binary = join(dir, "fake-haproxy");
    writeFileSync(
      binary,
      `#!/bin/sh\n[ "$(pwd -P)" = "${dir}" ] || { echo "cwd $(pwd -P)" >&2; exit 1; }\n`,
    );
    chmodSync(binary, 0o755);
    writeFileSync(join(dir, FILES.config), "global\n");
    await checkHaproxyConfig({ dir, binary }, join(dir, FILES.config));
  });

  it("rejects with E_HAPROXY_CONFIG and HAProxy's own words when the check fails", async () => {
    const dir = realpathSync(tempDir("hx-cwd-"));
    const binary = join(dir, "fake-haproxy");
    writeFileSync(
      binary,
      "#!/bin/sh\necho \"[ALERT] parsing [x.cfg:3]: unknown keyword 'bind2'\" >&2\nexit 1\n",
    );
    chmodSync(binary, 0o755);
    await expect(
      checkHaproxyConfig({ dir, binary }, join(dir, FILES.config)),
    ).rejects.toMatchObject({
      code: "E_HAPROXY_CONFIG",
      message: expect.stringContaining("unknown keyword 'bind2'"),
    });
  });
});
