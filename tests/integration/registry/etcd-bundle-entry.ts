/**
 * Bundled by etcd-bundle.test.ts the way dist/gateway.mjs is, then run from a directory with
 * nothing beside it: registers one instance in the etcd at argv[2] and prints the record.
 */
import { connectEtcd } from "../../../gateway-runtime/registry/etcd-client.js";
import { EtcdRegistrationStore } from "../../../gateway-runtime/registry/etcd-store.js";
import { DEFAULT_PLAN, wgKey } from "../../unit/registry/net.js";

const client = await connectEtcd({ endpoints: [process.argv[2] as string], timeoutMs: 5000 });
const store = await EtcdRegistrationStore.open({
  client,
  prefix: "/bundle",
  plan: DEFAULT_PLAN,
  timeoutMs: 5000,
  ownsClient: true,
});
const record = await store.register({ instanceId: "i1", appId: "app1", publicKey: wgKey(1) });
await store.close();
process.stdout.write(JSON.stringify(record));
