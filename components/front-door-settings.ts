import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { z } from "zod";
import { isDnsName } from "../gateway-runtime/config/index.js";
import { packageRoot } from "./bundle.js";
import { GEO_REGIONS, type FrontDoorRegion } from "./front-door.js";
import { loadStackFile } from "./stack-config.js";
import { parseStackSettings } from "./stack-settings.js";

/**
 * `gateway:frontDoor`: set in the `global` stack only, which then deploys the front door
 * (components/front-door.ts) instead of a region. The regions are named by stack; their hosts
 * and base domains are read from their committed stack files, so they are written once.
 */
const frontDoorSchema = z.strictObject({
  name: z.string().refine((s) => isDnsName(s, 2), { error: "expected a DNS name" }),
  zoneId: z.string().min(1),
  accountId: z.string().min(1),
  regions: z
    .array(
      z.strictObject({
        stack: z.string().regex(/^[a-z0-9-]+$/),
        geo: z.array(z.enum(GEO_REGIONS)).min(1),
      }),
    )
    .min(1, { error: "list at least one region" }),
  fallback: z.string().optional(),
});
export type FrontDoorSettings = z.output<typeof frontDoorSchema>;

export const FRONT_DOOR_KEY = "frontDoor";

/** The running stack's `gateway:frontDoor`, validated; undefined in a region stack. */
export function readFrontDoorSettings(): FrontDoorSettings | undefined {
  const raw = new pulumi.Config("gateway").getObject<unknown>(FRONT_DOOR_KEY);
  if (raw === undefined) return undefined;
  const result = frontDoorSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (i) => `  - gateway:${FRONT_DOOR_KEY}.${i.path.join(".")}: ${i.message}`,
  );
  throw new pulumi.RunError(
    `invalid gateway:${FRONT_DOOR_KEY} (stack ${pulumi.getStack()}):\n${problems.join("\n")}`,
  );
}

/** Each region's hosts and base domain, from `stacks/Pulumi.<stack>.yaml` of this package. */
export function frontDoorRegions(
  settings: FrontDoorSettings,
  stacksDir: string = join(packageRoot(), "stacks"),
): FrontDoorRegion[] {
  return settings.regions.map(({ stack, geo }) => {
    const file = join(stacksDir, `Pulumi.${stack}.yaml`);
    const config = (parse(readFileSync(file, "utf8")) as { config: Record<string, unknown> })
      .config;
    const { hosts } = parseStackSettings({ hosts: config["gateway:hosts"] }, file);
    return {
      name: stack,
      baseDomain: loadStackFile(file).core.proxy.base_domain,
      hosts: hosts.map((h) => ({ name: h.name, address: h.address })),
      geo,
    };
  });
}
