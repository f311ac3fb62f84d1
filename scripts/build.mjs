// Bundles the gateway runtime into one ESM file a host runs with plain `node`, no npm needed.
import { createHash } from "node:crypto";
import { readFileSync, renameSync } from "node:fs";
import { build } from "esbuild";
import { BUNDLE_OPTIONS } from "./bundle-options.mjs";

const outfile = "dist/gateway.mjs";

// Written beside the target and renamed over it: a gateway or test starting meanwhile never
// reads a half-written bundle.
const temp = `${outfile}.${process.pid}.tmp`;
await build({ ...BUNDLE_OPTIONS, entryPoints: ["gateway-runtime/main.ts"], outfile: temp });

renameSync(temp, outfile);
const bytes = readFileSync(outfile);
const sha256 = createHash("sha256").update(bytes).digest("hex");
console.log(`${outfile}  ${(bytes.length / 1024).toFixed(1)} KiB  sha256 ${sha256}`);
