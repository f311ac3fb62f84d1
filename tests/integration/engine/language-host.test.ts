import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { allStacks, capturePlan, ROOT } from "../../../tools/plan/plan.js";

/**
 * Every stack as `pulumi preview` runs it: the recording engine derives the program directory
 * and entry from Pulumi.yaml as the engine does, and @pulumi/pulumi's own `cmd/run` changes
 * into that directory (bin/) before it imports the compiled program. A program that reads a
 * file relative to the working directory fails here ("dist/gateway.mjs is missing").
 */
describe("the program under Pulumi's Node.js language host", () => {
  it.each(allStacks())("%s: previews, and ships a bundle that exists", async (stack) => {
    const lines: string[] = [];
    const plan = await capturePlan(stack, { log: (l) => lines.push(l) });
    const copy = plan.resources.find((r) => r.type === "command:remote:CopyToRemote");
    const source = (copy?.inputs.source as { asset: string } | undefined)?.asset;
    expect(source).toBe("dist/gateway.mjs");
    expect(existsSync(`${ROOT}${source}`)).toBe(true);
    expect(lines.filter((l) => l.startsWith("error"))).toEqual([]);
  });
});
