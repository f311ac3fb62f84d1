import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as pulumi from "@pulumi/pulumi";

/** The bundled runtime every host runs, and its sha256 (a new bundle restarts the gateways). */
export interface BundleInfo {
  readonly path: string;
  readonly sha256: string;
}

/**
 * The folder of the package this module belongs to: the nearest parent holding a
 * package.json. Files the program ships are found from there, never from the working
 * directory: Pulumi runs a program whose `main` names a file from that file's folder
 * (`bin/` once compiled), and a consumer's program runs from its own project.
 */
export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${from}`);
    dir = parent;
  }
  return dir;
}

/** `dist/gateway.mjs` of this package, as `npm run build` writes it. */
export const DEFAULT_BUNDLE = join(packageRoot(), "dist", "gateway.mjs");

/**
 * Reads the bundle; a missing bundle stops the program before anything is planned, naming
 * `source` (the stack key that named the file) when there is one.
 */
export function readBundle(path = DEFAULT_BUNDLE, source?: string): BundleInfo {
  const file = resolve(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    throw new pulumi.RunError(
      path === DEFAULT_BUNDLE
        ? `${path} is missing: run "npm run build" first`
        : `${source === undefined ? "the gateway bundle" : `${source}:`} ${file} cannot be read`,
    );
  }
  return { path: file, sha256: createHash("sha256").update(bytes).digest("hex") };
}
