/**
 * Bringing a WireGuard link into existence, as the gateway's `WireGuardManager` does it: the
 * kernel's `ip link add type wireguard`, else a `wireguard-go` this process owns (started by
 * `WireguardGoProcess`: foreground, under `setpriv --pdeathsig`, stopped by us).
 */
import type { Logger } from "../log/index.js";
import { CommandError, type CommandRunner } from "../wg/exec.js";
import { WireguardGoProcess } from "../wg/userspace.js";

export type WgImplementation = "auto" | "kernel" | "userspace";

/** What Linux and wg accept for an interface name, minus a leading `-` or `.`. */
export const IFNAME = /^[A-Za-z0-9_=+][A-Za-z0-9_=+.-]{0,14}$/;

export interface LinkOptions {
  readonly exec: CommandRunner;
  readonly iface: string;
  readonly implementation: WgImplementation;
  readonly wireguardGo: string;
  readonly commandTimeoutMs: number;
  readonly log: Logger;
}

/** Whether `iface` exists; other `ip` failures are thrown. */
export async function linkExists(opts: LinkOptions): Promise<boolean> {
  try {
    await opts.exec.run("ip", ["link", "show", "dev", opts.iface], opts.commandTimeoutMs);
    return true;
  } catch (err) {
    if (err instanceof CommandError && /does not exist/.test(err.stderr)) return false;
    throw err;
  }
}

/**
 * Creates `iface`: a kernel link when the module is there (and allowed), else wireguard-go.
 * Resolves with the wireguard-go process when one was started; the caller stops it.
 */
export async function createWgLink(opts: LinkOptions): Promise<WireguardGoProcess | undefined> {
  const { iface, implementation, log } = opts;
  if (implementation !== "userspace") {
    try {
      await opts.exec.run(
        "ip",
        ["link", "add", "dev", iface, "type", "wireguard"],
        opts.commandTimeoutMs,
      );
      log.info({ interface: iface }, "created kernel WireGuard interface");
      return undefined;
    } catch (err) {
      if (implementation === "kernel") throw err;
      const reason = err instanceof CommandError ? err.stderr.trim() : String(err);
      log.info({ interface: iface, reason }, "no kernel WireGuard; starting wireguard-go");
    }
  }
  return WireguardGoProcess.start({
    runner: opts.exec,
    binary: opts.wireguardGo,
    iface,
    log,
    readyTimeoutMs: 5_000,
    commandTimeoutMs: opts.commandTimeoutMs,
  });
}
