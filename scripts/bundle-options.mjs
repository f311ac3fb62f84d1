// How every bundle of ours is built (the gateway in scripts/build.mjs, the bench entries in
// bench/lib/build.ts): one ESM file per entry for plain `node` of the hosts' major
// (`NODE_MAJOR`, .node-version), dependencies inlined.
import { etcdProtoInline } from "./etcd-proto.mjs";

export const BUNDLE_OPTIONS = {
  bundle: true,
  platform: "node",
  target: "node26",
  format: "esm",
  minify: false,
  sourcemap: false,
  legalComments: "inline",
  // Bundled CommonJS dependencies call require(); give them one in the ESM output.
  banner: {
    js: 'import { createRequire as __gatewayRequire } from "node:module";\nconst require = __gatewayRequire(import.meta.url);',
  },
  logLevel: "warning",
  plugins: [etcdProtoInline],
};
