/**
 * The schema Pulumi makes of this package when a program runs `pulumi package add` on it:
 * @pulumi/pulumi's own component analyzer (the one its plugin host runs for `GetSchema`) over
 * the TypeScript sources, then its schema generator. `npx tsx tools/package/schema.ts` prints it.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);

export const ROOT = new URL("../../", import.meta.url).pathname;

export interface PropertySchema {
  type?: string;
  $ref?: string;
  plain?: boolean;
  optional?: boolean;
  description?: string;
  items?: PropertySchema;
  additionalProperties?: PropertySchema;
}

export interface PackageSchema {
  name: string;
  version: string;
  resources: Record<
    string,
    {
      isComponent: boolean;
      inputProperties: Record<string, PropertySchema>;
      requiredInputs: string[];
      properties: Record<string, PropertySchema>;
      required: string[];
    }
  >;
  types: Record<
    string,
    {
      type: string;
      properties?: Record<string, PropertySchema>;
      required?: string[];
      enum?: { name: string; value: string }[];
    }
  >;
}

/** The provider name the plugin host derives from package.json `name` (scope dropped). */
export function providerName(packageName: string): string {
  return (/^(?:@[^/]+\/)?(.+)$/.exec(packageName)?.[1] ?? packageName).replace(
    /[^-a-zA-Z0-9_]/g,
    "-",
  );
}

/** Runs the analyzer on the package at `dir` for the given component classes; throws what it rejects. */
export function componentSchema(dir = ROOT, components = ["GatewayRegion"]): PackageSchema {
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const { Analyzer } = require("@pulumi/pulumi/provider/experimental/analyzer.js");
  const { generateSchema } = require("@pulumi/pulumi/provider/experimental/schema.js");
  const name = providerName(pkg.name);
  const found = new Analyzer(dir, name, pkg, new Set(components)).analyze();
  return generateSchema(
    name,
    pkg.version,
    pkg.description,
    found.components,
    found.typeDefinitions,
    found.dependencies,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${JSON.stringify(componentSchema(), null, 2)}\n`);
}
