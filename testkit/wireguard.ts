/**
 * A gateway's WireGuard in a network namespace, for the suites and the bench that run the real
 * bundle on this host: shims for `ip`, `wg` and `wireguard-go`, first on the gateway's PATH,
 * run the real tools inside the namespace (so its interface never touches the host's), and a
 * CVM's end of a tunnel, a second wireguard-go in the same namespace whose keepalives make the
 * handshakes that keep its instance healthy.
 */
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { NetnsHarness, NsProcess } from "./netns.js";
import { until } from "./poll.js";

/**
 * wireguard-go creates /var/run/wireguard, then listens there; on this shared machine something
 * else removes that directory now and then, and the listen fails with ENOENT (seen once in many
 * runs). A wireguard-go that failed so, and only so, gets one more attempt.
 */
export const UAPI_RACE = "Failed to listen on uapi socket";

/** The path of `name` on this host's PATH (shims must call the real tool by its path). */
export function which(name: string): string {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} is not on PATH`);
}

/** Writes `ip`, `wg` and `wireguard-go` into `dir`, each running the real tool inside `ns`. */
export function writeShims(dir: string, ns: string): void {
  const ip = which("ip");
  for (const tool of ["ip", "wg", "wireguard-go"]) {
    const file = join(dir, tool);
    writeFileSync(file, `#!/bin/sh\nexec ${ip} netns exec '${ns}' ${which(tool)} "$@"\n`);
    chmodSync(file, 0o755);
  }
}

export interface CvmPeerOptions {
  /** The namespace holding the gateway's interface (the shims' `ns`). */
  readonly ns: string;
  /** The CVM's interface name (`NetnsHarness.linkName`). */
  readonly iface: string;
  /** Where the CVM's private key file is written. */
  readonly keyFile: string;
  readonly privateKey: string;
  /** The CVM's UDP port, not the gateway's. */
  readonly listenPort: number;
  readonly gatewayKey: string;
  /** The gateway's `ip:port` inside the namespace. */
  readonly gatewayEndpoint: string;
  /** The gateway's tunnel address, `a.b.c.d/32`. */
  readonly gatewayIp: string;
}

/**
 * Starts the CVM's wireguard-go (one retry after `UAPI_RACE`), then gives it its key and the
 * gateway as its one peer, with a keepalive every second. `teardown()` of `net` ends it.
 */
export async function startCvmPeer(net: NetnsHarness, o: CvmPeerOptions): Promise<NsProcess> {
  writeFileSync(o.keyFile, o.privateKey, { mode: 0o600 });
  let wgGo: NsProcess;
  for (let attempt = 1; ; attempt++) {
    const proc = net.spawn(o.ns, which("wireguard-go"), ["-f", o.iface]);
    const up = await until(
      "the CVM's wireguard-go",
      async () =>
        proc.child.exitCode !== null
          ? "exited"
          : (await net.exec(o.ns, "wg", ["show", o.iface])) && "up",
      10_000,
      { context: proc.output },
    );
    if (up !== "exited") {
      wgGo = proc;
      break;
    }
    if (attempt > 1 || !proc.output().includes(UAPI_RACE)) {
      throw new Error(`the CVM's wireguard-go exited: ${proc.output()}`);
    }
  }
  await net.exec(o.ns, "wg", [
    ...["set", o.iface, "private-key", o.keyFile, "listen-port", String(o.listenPort)],
    ...["peer", o.gatewayKey, "endpoint", o.gatewayEndpoint],
    ...["allowed-ips", o.gatewayIp, "persistent-keepalive", "1"],
  ]);
  await net.exec(o.ns, "ip", ["link", "set", o.iface, "up"]);
  return wgGo;
}

/**
 * The `core.wg` section of a gateway whose tunnel network lives on this host's loopback side
 * of a namespace (the hand-over test, the adversarial suite, the soak): `<net>.1/<bits>` for the
 * gateway, the rest of `<net>.0/<bits>` for CVMs but the first `/<reserved>`, its files in `dir`.
 */
export function loopbackWgSection(o: {
  readonly keys: { readonly publicKey: string; readonly privateKey: string };
  readonly net: string;
  readonly bits: number;
  readonly reserved: number;
  readonly dir: string;
  readonly iface: string;
  readonly pollInterval: string;
}): Record<string, unknown> {
  return {
    public_key: o.keys.publicKey,
    private_key: o.keys.privateKey,
    ip: `${o.net}.1/${o.bits}`,
    client_ip_range: `${o.net}.0/${o.bits}`,
    reserved_net: [`${o.net}.0/${o.reserved}`],
    config_path: join(o.dir, "wireguard", "gw.conf"),
    interface: o.iface,
    endpoint: "127.0.0.1:51820",
    handshake_poll_interval: o.pollInterval,
  };
}
