import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { allStacks, capturePlan, ROOT } from "../../../tools/plan/plan.js";

/**
 * Every stack as `pulumi preview` runs it: the recording engine derives the program directory
 * and entry from Pulumi.yaml as the engine does, and @pulumi/pulumi's own `cmd/run` changes
 * into that directory (bin/) before it imports the compiled program. A program that reads a
 * file relative to the working directory fails here ("dist/gateway.mjs is missing").
 */
/** The global stack deploys the front door (Cloudflare load balancing), no host. */
const FRONT_DOOR = "global";

describe("the program under Pulumi's Node.js language host", () => {
  it.each(allStacks().filter((s) => s !== FRONT_DOOR))(
    "%s: previews, and ships a bundle that exists",
    async (stack) => {
      const lines: string[] = [];
      const plan = await capturePlan(stack, { log: (l) => lines.push(l) });
      const copy = plan.resources.find((r) => r.type === "command:remote:CopyToRemote");
      const source = (copy?.inputs.source as { asset: string } | undefined)?.asset;
      expect(source).toBe("dist/gateway.mjs");
      expect(existsSync(`${ROOT}${source}`)).toBe(true);
      expect(lines.filter((l) => l.startsWith("error"))).toEqual([]);
    },
  );

  it("global: previews the front door, and ships nothing to any host", async () => {
    const lines: string[] = [];
    const plan = await capturePlan(FRONT_DOOR, { log: (l) => lines.push(l) });
    expect(lines.filter((l) => l.startsWith("error"))).toEqual([]);
    expect(plan.resources.some((r) => r.type.startsWith("command:"))).toBe(false);
    expect(
      plan.resources.filter((r) => r.type === "cloudflare:index/loadBalancer:LoadBalancer"),
    ).toHaveLength(1);
  });
});
