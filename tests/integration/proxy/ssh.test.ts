import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSshd, type TestSshd } from "../../helpers/sshd.js";
import { ENGINES, APP_A, type ProxyLab, run, startProxyLab, TEST_DOMAIN } from "./harness.js";

describe.each(ENGINES)("on the %s engine", (engine) => {
  const SSH_IP = "127.0.5.2";
  let lab: ProxyLab;
  let sshd: TestSshd;
  let dir: string;

  beforeAll(async () => {
    lab = await startProxyLab({}, { engine });
    await lab.addInstance("aa01", APP_A, SSH_IP);
    sshd = await startSshd(SSH_IP);
    dir = sshd.dir;
  });

  afterAll(async () => {
    await sshd?.stop();
    await lab?.close();
  });

  describe("SSH through <app-id>-22", () => {
    it("a real ssh client reaches the CVM's sshd with openssl s_client as ProxyCommand", async () => {
      const sni = `${APP_A}-22.${TEST_DOMAIN}`;
      const proxyCommand = `openssl s_client -quiet -verify_return_error -connect 127.0.0.1:${lab.port} -servername ${sni} -CAfile ${lab.ca.certFile}`;
      const r = await run(
        "ssh",
        [
          "-o",
          `ProxyCommand=${proxyCommand}`,
          "-o",
          "StrictHostKeyChecking=no",
          "-o",
          "UserKnownHostsFile=/dev/null",
          "-o",
          "BatchMode=yes",
          "-o",
          "ConnectTimeout=10",
          "-i",
          join(dir, "client"),
          `root@${sni}`,
          "echo ssh-through-gateway",
        ],
        { timeoutMs: 20_000 },
      );
      expect(r.stdout.trim()).toBe("ssh-through-gateway");
      expect(r.code).toBe(0);
    });
  });
});
