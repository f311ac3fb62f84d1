import { ok, sh, step } from "./exec.js";
import { LAB, type LabGatewaySpec } from "./state.js";

interface Node {
  readonly ns: string;
  readonly address: string;
  readonly veth: string;
}

async function nsExists(ns: string): Promise<boolean> {
  return (await sh("ip", ["netns", "list"])).split("\n").some((l) => l.split(" ")[0] === ns);
}

/**
 * A bridge in this namespace (10.99.0.1/24) and one namespace per lab host (the region's
 * gateway hosts, the CVMs), each on a veth.
 */
export async function networkUp(gateways: readonly LabGatewaySpec[]): Promise<void> {
  const hosts: Node[] = [...gateways, ...LAB.cvms];
  step(
    `network: bridge ${LAB.bridge} ${LAB.hostAddress}/${LAB.prefix} and namespaces ${hosts
      .map((h) => h.ns)
      .join(", ")}`,
  );
  if (!(await ok("ip", ["link", "show", LAB.bridge]))) {
    await sh("ip", ["link", "add", LAB.bridge, "type", "bridge"]);
  }
  await sh("ip", ["address", "replace", `${LAB.hostAddress}/${LAB.prefix}`, "dev", LAB.bridge]);
  await sh("ip", ["link", "set", LAB.bridge, "up"]);
  for (const host of hosts) {
    if (!(await nsExists(host.ns))) await sh("ip", ["netns", "add", host.ns]);
    await sh("ip", ["-n", host.ns, "link", "set", "lo", "up"]);
    if (!(await ok("ip", ["link", "show", host.veth]))) {
      await sh("ip", [
        "link",
        "add",
        host.veth,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        host.ns,
      ]);
    }
    await sh("ip", ["link", "set", host.veth, "master", LAB.bridge, "up"]);
    await sh("ip", [
      "-n",
      host.ns,
      "address",
      "replace",
      `${host.address}/${LAB.prefix}`,
      "dev",
      "eth0",
    ]);
    await sh("ip", ["-n", host.ns, "link", "set", "eth0", "up"]);
    await sh("ip", ["-n", host.ns, "route", "replace", "default", "via", LAB.hostAddress]);
  }
}

/** Removes every namespace the lab may have made, whatever the region size. */
export async function networkDown(): Promise<void> {
  const hosts: Node[] = [...LAB.gateways, ...LAB.cvms];
  for (const host of hosts) {
    if (await nsExists(host.ns)) {
      const pids = (await sh("ip", ["netns", "pids", host.ns]).catch(() => ""))
        .split("\n")
        .filter(Boolean);
      for (const pid of pids) await sh("kill", ["-9", pid]).catch(() => undefined);
      await sh("ip", ["netns", "delete", host.ns]);
    }
    // Deleting the namespace takes the veth pair with it; this only catches a half-made one.
    await ok("ip", ["link", "delete", host.veth]);
  }
  await ok("ip", ["link", "delete", LAB.bridge]);
}
