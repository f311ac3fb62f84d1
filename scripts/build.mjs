// Bundles the gateway runtime into one ESM file a host runs with plain `node`, no npm needed.
import { createHash } from "node:crypto";
import { readFileSync, renameSync } from "node:fs";
import { build } from "esbuild";

const outfile = "dist/gateway.mjs";

// Written beside the target and renamed over it: a gateway or test starting meanwhile never
// reads a half-written bundle.
const temp = `${outfile}.${process.pid}.tmp`;
await build({
  entryPoints: ["gateway-runtime/main.ts"],
  outfile: temp,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  minify: false,
  sourcemap: false,
  legalComments: "inline",
  // Bundled CommonJS dependencies call require(); give them one in the ESM output.
  banner: {
    js: 'import { createRequire as __gatewayRequire } from "node:module";\nconst require = __gatewayRequire(import.meta.url);',
  },
  logLevel: "warning",
});

renameSync(temp, outfile);
const bytes = readFileSync(outfile);
const sha256 = createHash("sha256").update(bytes).digest("hex");
console.log(`${outfile}  ${(bytes.length / 1024).toFixed(1)} KiB  sha256 ${sha256}`);
