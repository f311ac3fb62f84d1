import { ok, sh, step } from "./exec.js";
import { LAB } from "./state.js";

const hosts = () => [LAB.gateway, ...LAB.cvms];

async function nsExists(ns: string): Promise<boolean> {
  return (await sh("ip", ["netns", "list"])).split("\n").some((l) => l.split(" ")[0] === ns);
}

/** A bridge in this namespace (10.99.0.1/24) and one namespace per lab host, each on a veth. */
export async function networkUp(): Promise<void> {
  step(
    `network: bridge ${LAB.bridge} ${LAB.hostAddress}/${LAB.prefix} and namespaces ${hosts()
      .map((h) => h.ns)
      .join(", ")}`,
  );
  if (!(await ok("ip", ["link", "show", LAB.bridge]))) {
    await sh("ip", ["link", "add", LAB.bridge, "type", "bridge"]);
  }
  await sh("ip", ["address", "replace", `${LAB.hostAddress}/${LAB.prefix}`, "dev", LAB.bridge]);
  await sh("ip", ["link", "set", LAB.bridge, "up"]);
  for (const host of hosts()) {
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

export async function networkDown(): Promise<void> {
  for (const host of hosts()) {
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
