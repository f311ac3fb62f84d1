/**
 * `gateway:sshUser` other than root: every remote step of every host runs its scripts, create
 * and delete alike, through `asRoot` (sudo -n), and the setup gives that user the bundle's
 * file, which it copies without sudo. Root's steps are the committed plans, unchanged.
 */
import { describe, expect, it } from "vitest";
import { asRoot, bundleOwnedBy } from "../../../host/sudo.js";
import { capturePlan, stackConfig } from "../../../tools/plan/plan.js";

const CMD = "command:remote:Command";

describe("a stack whose SSH user is not root", () => {
  it("eu (etcd, drain and gate steps): each script is root's, through sudo", async () => {
    // Revealed: the connection holds the private key, so it is a secret as a whole.
    const root = await capturePlan("eu", { revealSecrets: true });
    const { config, secretKeys } = stackConfig("eu");
    const deploy = await capturePlan("eu", {
      config: { config: { ...config, "gateway:sshUser": "deploy" }, secretKeys },
      revealSecrets: true,
    });
    const steps = root.resources.filter((r) => r.type === CMD);
    expect(steps.map((r) => r.name)).toContain("eu-gw1-etcd-unit");
    expect(deploy.resources.filter((r) => r.type === CMD).map((r) => r.name)).toEqual(
      steps.map((r) => r.name),
    );
    for (const step of steps) {
      const now = deploy.resources.find((r) => r.name === step.name);
      const extra = step.name.endsWith("-setup") ? bundleOwnedBy("deploy") : "";
      expect(now?.inputs.create, step.name).toBe(
        asRoot(`${step.inputs.create as string}${extra}`, "deploy"),
      );
      if (step.inputs.delete !== undefined) {
        expect(now?.inputs.delete, step.name).toBe(asRoot(step.inputs.delete as string, "deploy"));
      }
      expect(now?.inputs.stdin, step.name).toEqual(step.inputs.stdin);
      expect(now?.inputs.connection).toMatchObject({ user: "deploy" });
    }
  });

  it("a user name that is not one fails preview, naming the key", async () => {
    const { config, secretKeys } = stackConfig("us");
    await expect(
      capturePlan("us", {
        config: { config: { ...config, "gateway:sshUser": "root; id" }, secretKeys },
      }),
    ).rejects.toThrow(/gateway:sshUser.*expected a user name/s);
  });
});
