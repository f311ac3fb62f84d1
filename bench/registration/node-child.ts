/**
 * One region node in a process of its own, for the region bench to SIGKILL: it joins the
 * region's node list (its record under a lease it keeps alive) and waits. Prints "joined" once
 * its record is written.
 *
 *   npx tsx bench/registration/node-child.ts <endpoints,comma-separated> <prefix> <name>
 */
import { NodeMembership } from "../../gateway-runtime/cluster/index.js";
import { connectEtcd } from "../../gateway-runtime/registry/etcd-client.js";

const [endpoints = "", prefix = "", name = ""] = process.argv.slice(2);
const client = await connectEtcd({ endpoints: endpoints.split(","), timeoutMs: 5000 });
await NodeMembership.open({
  client,
  prefix,
  timeoutMs: 5000,
  self: {
    name,
    wg_public_key: "",
    wg_ip: "10.4.0.9/16",
    wg_endpoint: "192.0.2.9:51820",
    url: "",
    version: "bench",
    started_at: Date.now(),
  },
});
process.stdout.write("joined\n");
setInterval(() => {}, 60_000);
