/**
 * Bundled by etcd-bundle.test.ts the way dist/gateway.mjs is, then run from a directory with
 * nothing beside it: opens the store a config with core.cluster asks for (the gateway's own
 * path, which loads the etcd client on demand), registers one instance in the etcd at argv[2]
 * and prints the record.
 */
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { silentLogger } from "../../../gateway-runtime/log/index.js";
import { openStore } from "../../../gateway-runtime/registration/store.js";
import { minimalConfig, withKey } from "../../../testkit/config.js";
import { DEFAULT_PLAN, wgKey } from "../../unit/registry/net.js";

const config = parseGatewayConfig(
  withKey(minimalConfig(), "core.cluster", {
    enabled: true,
    prefix: "/bundle",
    etcd: { endpoints: [process.argv[2]], timeout: "5s" },
  }),
  "test",
);
const store = await openStore(config, DEFAULT_PLAN, silentLogger());
const record = await store.register({ instanceId: "i1", appId: "app1", publicKey: wgKey(1) });
await store.close();
process.stdout.write(JSON.stringify(record));
