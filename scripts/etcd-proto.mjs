// The etcd client (`etcd3`) reads its .proto files from disk next to its own source when it is
// first loaded. A bundle is one file with no such directory beside it, so at build time the
// parsed definitions are inlined as JSON and loaded with proto-loader's `fromJSON`, which builds
// the same package definition without touching the file system.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const etcdLib = dirname(require.resolve("etcd3"));
// biome-ignore lint/suspicious/noTemplateCurlyInString: etcd3's source text, matched literally
const LOAD = "(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`, {";

function protoJson() {
  // The proto-loader etcd3 itself resolves, so the JSON matches what it would parse at run time.
  const fromEtcd = createRequire(join(etcdLib, "index.js"));
  const loader = dirname(fromEtcd.resolve("@grpc/proto-loader"));
  const { loadProtosWithOptionsSync } = fromEtcd(join(loader, "util.js"));
  const root = loadProtosWithOptionsSync(join(etcdLib, "..", "proto", "rpc.proto"), {
    keepCase: true,
  });
  return JSON.stringify(root.toJSON());
}

/** esbuild plugin: rewrites etcd3's one `loadSync` of its protos into `fromJSON(<inlined>)`. */
export const etcdProtoInline = {
  name: "etcd-proto-inline",
  setup(build) {
    build.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      if (!source.includes(LOAD)) {
        // A new etcd3 loads its protos differently: fail the build rather than ship a bundle
        // that throws ENOENT on its first etcd call.
        throw new Error(`${args.path}: the proto loadSync call to inline was not found`);
      }
      const contents = source.replace(LOAD, `(0, proto_loader_1.fromJSON)(${protoJson()}, {`);
      return { contents, loader: "js" };
    });
  },
};
